"""Grants given at run time (``bastion principals grant``), on top of the shipped static grants.

Looked up from the database with a short cache, so a revoked grant stops working within seconds everywhere.
API keys may carry scopes: they only ever narrow what the principal's grants allow (``audit.read`` exactly,
or ``audit.*``), never widen.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.policy.grants import GrantAuthorizer
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Decision
from bastion.store.database import Database
from bastion.store.tables import StoredGrant

# What any authenticated principal may do to itself: exchange its own credential for an access token.
SELF_SERVICE = {"identity.tokens.issue": "default:self-service:tokens.issue"}


def scope_allows(scopes: tuple[str, ...], action: str) -> bool:
    return any(
        scope == action or (scope.endswith(".*") and action.startswith(scope[:-1])) for scope in scopes
    )


def scope_within(allowed: tuple[str, ...], scope: str) -> bool:
    """Whether ``scope`` (an action, or a namespace ``x.*``) asks for nothing beyond ``allowed``."""
    if scope.endswith(".*"):
        namespace = scope[:-1]  # "audit."
        return any(grant.endswith(".*") and namespace.startswith(grant[:-1]) for grant in allowed)
    return scope_allows(allowed, scope)


class StoredGrantAuthorizer:
    """Stored grants are cached per (principal, action, resource type) for ``cache_seconds`` (2 s by default):
    a revoked grant stops working on every replica within that time."""

    def __init__(
        self, database: Database, static: GrantAuthorizer, clock: Clock, cache_seconds: float = 2.0
    ) -> None:
        self._database = database
        self._static = static
        self._clock = clock
        self._ttl = timedelta(seconds=cache_seconds)
        self._cache: dict[tuple[str, str, str], tuple[datetime, list[tuple[str, str | None]]]] = {}

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        principal = context.principal
        # Exchanging a credential for a token about the same principal comes before scope narrowing: the
        # token endpoint only issues scopes within the credential's own (``scope_within``).
        if (
            action in SELF_SERVICE
            and resource == Resource("principal", principal.id)
            and not principal.is_anonymous
        ):
            return Decision(allowed=True, reason="self-service", policy_ids=(SELF_SERVICE[action],))
        scopes = tuple(principal.attributes.get("scopes", ()))
        if scopes and not scope_allows(scopes, action):
            return Decision(allowed=False, reason="outside the credential's scopes")
        decision = self._static.authorize(context, action, resource)
        if decision.allowed or principal.is_anonymous:
            return decision
        grants = self._grants(principal.id, action, resource.type)
        grant_id = next((gid for gid, rid in grants if rid is None or rid == resource.id), None)
        if grant_id is None:
            return decision
        return Decision(allowed=True, reason="granted", policy_ids=(grant_id,))

    def _grants(self, principal_id: str, action: str, resource_type: str) -> list[tuple[str, str | None]]:
        now, key = self._clock.now(), (principal_id, action, resource_type)
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._database.read() as session:
            rows = session.execute(
                select(StoredGrant.id, StoredGrant.resource_id).where(
                    StoredGrant.principal_id == principal_id,
                    StoredGrant.action == action,
                    StoredGrant.resource_type == resource_type,
                )
            ).all()
        grants = [(str(gid), rid) for gid, rid in rows]
        if len(self._cache) > 10_000:  # bounded whatever callers ask for
            self._cache.clear()
        self._cache[key] = (now, grants)
        return grants

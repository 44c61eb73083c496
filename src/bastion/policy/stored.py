"""Grants given at run time (``bastion principals grant``), on top of the shipped static grants.

Looked up per request, so a revoked grant stops working at once on every replica. API keys may carry scopes:
they only ever narrow what the principal's grants allow (``audit.read`` exactly, or ``audit.*``), never widen.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from bastion.policy.grants import GrantAuthorizer
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Decision
from bastion.store.database import Database
from bastion.store.tables import StoredGrant


def scope_allows(scopes: tuple[str, ...], action: str) -> bool:
    return any(
        scope == action or (scope.endswith(".*") and action.startswith(scope[:-1])) for scope in scopes
    )


class StoredGrantAuthorizer:
    def __init__(self, database: Database, static: GrantAuthorizer) -> None:
        self._database = database
        self._static = static

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        principal = context.principal
        scopes = tuple(principal.attributes.get("scopes", ()))
        if scopes and not scope_allows(scopes, action):
            return Decision(allowed=False, reason="outside the credential's scopes")
        decision = self._static.authorize(context, action, resource)
        if decision.allowed or principal.is_anonymous:
            return decision
        with self._database.read() as session:
            grant_id = session.execute(
                select(StoredGrant.id)
                .where(
                    StoredGrant.principal_id == principal.id,
                    StoredGrant.action == action,
                    StoredGrant.resource_type == resource.type,
                    or_(StoredGrant.resource_id.is_(None), StoredGrant.resource_id == resource.id),
                )
                .limit(1)
            ).scalar()
        if grant_id is None:
            return decision
        return Decision(allowed=True, reason="granted", policy_ids=(grant_id,))

"""Managing principals, their grants and their API keys — each an authorized, audited action.

Creating a key for a principal needs ``identity.apikeys.create`` on *that* principal, so a grant can be given
for one principal only; no code path lets a caller give itself more than its own grants allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.core.ids import uuid7
from bastion.identity import apikeys
from bastion.identity.pepper import Pepper
from bastion.spine.context import Context, PrincipalType, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import ApiKey, PrincipalRow, RevokedToken, StoredGrant

_ID = re.compile(r"^(user|service):[a-z0-9][a-z0-9._@-]{0,200}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_SCOPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$")
MAX_KEY_LIFETIME = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class PrincipalInfo:
    id: str
    type: str
    display_name: str
    attributes: dict[str, Any]
    disabled: bool


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new API key. ``token`` is shown once and never stored."""

    key_id: str
    principal_id: str
    expires_at: datetime | None
    token: str = field(repr=False)


class IdentityService:
    def __init__(self, uow: UnitOfWork, pepper: Pepper, clock: Clock) -> None:
        self._uow, self._pepper, self._clock = uow, pepper, clock

    def create_principal(
        self,
        context: Context,
        principal_id: str,
        display_name: str = "",
        attributes: dict[str, Any] | None = None,
    ) -> PrincipalInfo:
        if not _ID.fullmatch(principal_id):
            raise InvalidInput("Principal ids are 'user:NAME' or 'service:NAME' (lowercase).")
        kind = PrincipalType.USER if principal_id.startswith("user:") else PrincipalType.SERVICE
        with self._uow.act(
            context, "identity.principals.create", Resource("principal", principal_id)
        ) as work:
            if work.session.get(PrincipalRow, principal_id) is not None:
                raise Conflict(f"Principal {principal_id} exists.")
            row = PrincipalRow(
                id=principal_id,
                type=kind.value,
                display_name=display_name or principal_id,
                attributes=dict(attributes or {}),
                disabled=False,
                created_at=self._clock.now(),
            )
            work.session.add(row)
            return _info(row)

    def set_disabled(self, context: Context, principal_id: str, disabled: bool) -> PrincipalInfo:
        """Disable (or re-enable) a principal: every key and token of a disabled principal is refused (within
        the authenticators' 2 s caches)."""
        action = "identity.principals.disable" if disabled else "identity.principals.enable"
        with self._uow.act(context, action, Resource("principal", principal_id)) as work:
            row = _principal(work.session, principal_id)
            row.disabled = disabled
            return _info(row)

    def list_principals(self, context: Context) -> list[PrincipalInfo]:
        with self._uow.read(context, "identity.principals.read", Resource("principal", "*")) as work:
            return [
                _info(row) for row in work.session.scalars(select(PrincipalRow).order_by(PrincipalRow.id))
            ]

    def grant(
        self,
        context: Context,
        principal_id: str,
        action: str,
        resource_type: str,
        resource_id: str | None = None,
    ) -> str:
        if (
            not _ACTION.fullmatch(action)
            or "*" in resource_type
            or (resource_id is not None and "*" in resource_id)
        ):
            raise InvalidInput(
                "Grants name one action and one resource type (and optionally one id); no wildcards."
            )
        details = {"action": action, "resource_type": resource_type, "resource_id": resource_id}
        with self._uow.act(
            context, "identity.grants.create", Resource("principal", principal_id), details=details
        ) as work:
            _principal(work.session, principal_id)
            grant_id = f"grant:{uuid7()}"
            work.session.add(
                StoredGrant(
                    id=grant_id,
                    principal_id=principal_id,
                    action=action,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    created_at=self._clock.now(),
                    created_by=context.principal.id,
                )
            )
            return grant_id

    def create_api_key(
        self,
        context: Context,
        principal_id: str,
        *,
        expires_in: timedelta | None = None,
        scopes: tuple[str, ...] = (),
    ) -> IssuedKey:
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_KEY_LIFETIME:
            raise InvalidInput("An API key lives between a second and a year.")
        if any(not _SCOPE.fullmatch(scope) for scope in scopes):
            raise InvalidInput("Scopes are action names like 'audit.read' or namespaces like 'audit.*'.")
        pepper = self._pepper.get()  # before the transaction: loading it may be an audited action of its own
        parsed, token = apikeys.new_key()
        key_id = parsed.key_id
        now = self._clock.now()
        expires_at = now + expires_in if expires_in else None
        details = {
            "key_id": key_id,
            "scopes": list(scopes),
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        with self._uow.act(
            context, "identity.apikeys.create", Resource("principal", principal_id), details=details
        ) as work:
            _principal(work.session, principal_id)
            work.session.add(
                ApiKey(
                    key_id=key_id,
                    principal_id=principal_id,
                    secret_hash=apikeys.secret_hash(pepper, key_id, parsed.secret),
                    scopes=list(scopes),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return IssuedKey(key_id=key_id, principal_id=principal_id, expires_at=expires_at, token=token)

    def revoke_api_key(self, context: Context, key_id: str) -> None:
        with self._uow.act(context, "identity.apikeys.revoke", Resource("api_key", key_id)) as work:
            key = work.session.get(ApiKey, key_id)
            if key is None:
                raise NotFound(f"There is no API key {key_id}.")
            key.revoked_at = key.revoked_at or self._clock.now()

    def revoke_token(self, context: Context, jti: str) -> None:
        """Refuse an access token before it expires, by its jti (within the verifiers' 2 s cache). The record
        outlives any token (they live at most 15 minutes) and can be dropped after ``expires_at``."""
        if not jti or len(jti) > 64:
            raise InvalidInput("A jti is 1 to 64 characters.")
        with self._uow.act(context, "identity.tokens.revoke", Resource("token", jti)) as work:
            if work.session.get(RevokedToken, jti) is None:
                now = self._clock.now()
                work.session.add(
                    RevokedToken(jti=jti, expires_at=now + timedelta(minutes=15), revoked_at=now)
                )

    def rotate_api_key(
        self, context: Context, key_id: str, overlap: timedelta = timedelta(hours=1)
    ) -> IssuedKey:
        """A new key for the same principal and scopes; the old one keeps working for ``overlap`` only."""
        with self._uow.read(context, "identity.apikeys.read", Resource("api_key", key_id)) as work:
            key = work.session.get(ApiKey, key_id)
            if key is None or key.revoked_at is not None:
                raise NotFound(f"There is no active API key {key_id}.")
            principal_id, scopes = key.principal_id, tuple(key.scopes)
        issued = self.create_api_key(context, principal_id, scopes=scopes)
        with self._uow.act(
            context,
            "identity.apikeys.revoke",
            Resource("api_key", key_id),
            details={"replaced_by": issued.key_id, "overlap_seconds": overlap.total_seconds()},
        ) as work:
            old = work.session.get(ApiKey, key_id)
            if old is not None:
                cutoff = self._clock.now() + overlap
                old.expires_at = min(old.expires_at, cutoff) if old.expires_at else cutoff
        return issued


def _principal(session: Any, principal_id: str) -> PrincipalRow:
    row = session.get(PrincipalRow, principal_id)
    if row is None:
        raise NotFound(f"There is no principal {principal_id}.")
    return row  # type: ignore[no-any-return]


def _info(row: PrincipalRow) -> PrincipalInfo:
    return PrincipalInfo(row.id, row.type, row.display_name, dict(row.attributes), row.disabled)

"""Managing principals, groups, role bindings and API keys — each an authorized, audited action.

Every action names the principal it is about as its resource (``Account`` in Cedar), so a policy can allow it
for one principal only; no code path lets a caller give itself more than its own policies allow (nobody
assigns roles to themselves — see the shipped ``default:forbid:self-assignment``).
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
from bastion.policy.authorizer import RESERVED_ATTRIBUTES, classification_rank
from bastion.policy.catalog import RESOURCE_TYPES, ROLES
from bastion.spine.context import Context, PrincipalType, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import ApiKey, GroupMember, PrincipalRow, RevokedToken, RoleBinding

_ID = re.compile(r"^(user|service|group):[a-z0-9][a-z0-9._@-]{0,200}$")
_ROLE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KINDS = {"user": PrincipalType.USER.value, "service": PrincipalType.SERVICE.value, "group": "group"}
_SCOPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$")
MAX_KEY_LIFETIME = timedelta(days=366)
BREAK_GLASS_PRINCIPAL = "user:break-glass"


@dataclass(frozen=True, slots=True)
class PrincipalInfo:
    id: str
    type: str
    display_name: str
    attributes: dict[str, Any]
    disabled: bool


@dataclass(frozen=True, slots=True)
class RoleBindingInfo:
    id: str
    principal_id: str
    role: str
    resource_type: str | None
    resource_id: str | None
    origin: str
    expires_at: datetime | None


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
            raise InvalidInput("Principal ids are 'user:NAME', 'service:NAME' or 'group:NAME' (lowercase).")
        attributes = _checked_attributes(attributes or {})
        with self._uow.act(
            context, "identity.principals.create", Resource("principal", principal_id)
        ) as work:
            if work.session.get(PrincipalRow, principal_id) is not None:
                raise Conflict(f"Principal {principal_id} exists.")
            row = PrincipalRow(
                id=principal_id,
                type=_KINDS[principal_id.split(":", 1)[0]],
                display_name=display_name or principal_id,
                attributes=attributes,
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

    def assign_role(
        self,
        context: Context,
        principal_id: str,
        role: str,
        *,
        resource: Resource | None = None,
        expires_in: timedelta | None = None,
    ) -> str:
        """Bind ``role`` to a principal or group — everywhere, on one resource type (``Resource(type, '*')``)
        or on one resource, for good or for ``expires_in``. Returns the binding id."""
        if not _ROLE.fullmatch(role):
            raise InvalidInput("Role names are lowercase letters, digits and '-'.")
        if resource is not None and resource.type not in RESOURCE_TYPES:
            raise InvalidInput(f"Unknown resource type {resource.type!r}.")
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput("A role binding expires in the future or not at all.")
        scope_type = resource.type if resource else None
        scope_id = resource.id if resource and resource.id != "*" else None
        details = {"role": role, "resource_type": scope_type, "resource_id": scope_id}
        with self._uow.act(
            context, "identity.roles.assign", Resource("principal", principal_id), details=details
        ) as work:
            _principal(work.session, principal_id)
            binding_id = f"binding:{uuid7()}"
            now = self._clock.now()
            work.session.add(
                RoleBinding(
                    id=binding_id,
                    principal_id=principal_id,
                    role=role,
                    resource_type=scope_type,
                    resource_id=scope_id,
                    origin="assigned",
                    created_at=now,
                    created_by=context.principal.id,
                    expires_at=now + expires_in if expires_in else None,
                )
            )
            work.details["binding_id"] = binding_id
            return binding_id

    def unassign_role(self, context: Context, binding_id: str) -> None:
        with self._uow.read(context, "identity.principals.read", Resource("principal", "*")) as work:
            binding = work.session.get(RoleBinding, binding_id)
            if binding is None or binding.revoked_at is not None:
                raise NotFound(f"There is no active role binding {binding_id}.")
            principal_id = binding.principal_id
        with self._uow.act(
            context,
            "identity.roles.unassign",
            Resource("principal", principal_id),
            details={"binding_id": binding_id},
        ) as work:
            row = work.session.get(RoleBinding, binding_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = self._clock.now()

    def roles(self, context: Context, principal_id: str) -> list[RoleBindingInfo]:
        """The principal's active role bindings (its groups' bindings apply too, and are listed with them)."""
        with self._uow.read(context, "identity.principals.read", Resource("principal", principal_id)) as work:
            _principal(work.session, principal_id)
            groups = list(
                work.session.scalars(
                    select(GroupMember.group_id).where(GroupMember.member_id == principal_id)
                )
            )
            now = self._clock.now()
            rows = work.session.scalars(
                select(RoleBinding)
                .where(
                    RoleBinding.principal_id.in_([principal_id, *groups]), RoleBinding.revoked_at.is_(None)
                )
                .order_by(RoleBinding.id)
            ).all()
            return [
                RoleBindingInfo(
                    r.id, r.principal_id, r.role, r.resource_type, r.resource_id, r.origin, r.expires_at
                )
                for r in rows
                if r.expires_at is None or r.expires_at > now
            ]

    def add_member(self, context: Context, group_id: str, member_id: str) -> None:
        with self._uow.act(
            context, "identity.groups.manage", Resource("principal", group_id), details={"member": member_id}
        ) as work:
            if _principal(work.session, group_id).type != "group":
                raise InvalidInput(f"{group_id} is not a group.")
            if _principal(work.session, member_id).type == "group":
                raise InvalidInput("Groups hold users and service accounts, not other groups.")
            if work.session.get(GroupMember, (group_id, member_id)) is None:
                work.session.add(GroupMember(group_id=group_id, member_id=member_id))

    def remove_member(self, context: Context, group_id: str, member_id: str) -> None:
        with self._uow.act(
            context, "identity.groups.manage", Resource("principal", group_id), details={"removed": member_id}
        ) as work:
            row = work.session.get(GroupMember, (group_id, member_id))
            if row is None:
                raise NotFound(f"{member_id} is not a member of {group_id}.")
            work.session.delete(row)

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
            if _principal(work.session, principal_id).type == "group":
                raise InvalidInput("Groups cannot hold API keys; their members do.")
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

    def create_break_glass(
        self, context: Context, principal_id: str = BREAK_GLASS_PRINCIPAL, role: str = "security-admin"
    ) -> IssuedKey:
        """Seal an emergency credential: a user holding ``role`` and one API key, shown once, to be kept
        offline. Every request made with it raises a critical audit event; earlier break-glass keys of the
        same principal are revoked."""
        if not _ID.fullmatch(principal_id) or not principal_id.startswith("user:") or role not in ROLES:
            raise InvalidInput("Break-glass needs a user:NAME principal and a shipped role.")
        pepper = self._pepper.get()  # before the transaction (see create_api_key)
        parsed, token = apikeys.new_key()
        now = self._clock.now()
        details = {"key_id": parsed.key_id, "role": role}
        with self._uow.act(
            context, "identity.breakglass.create", Resource("principal", principal_id), details=details
        ) as work:
            session = work.session
            if session.get(PrincipalRow, principal_id) is None:
                session.add(
                    PrincipalRow(
                        id=principal_id,
                        type=PrincipalType.USER.value,
                        display_name="Break-glass emergency access",
                        attributes={},
                        disabled=False,
                        created_at=now,
                    )
                )
                session.flush()
            for old in session.scalars(
                select(ApiKey).where(
                    ApiKey.principal_id == principal_id,
                    ApiKey.break_glass.is_(True),
                    ApiKey.revoked_at.is_(None),
                )
            ):
                old.revoked_at = now
            bound = session.scalar(
                select(RoleBinding.id).where(
                    RoleBinding.principal_id == principal_id,
                    RoleBinding.role == role,
                    RoleBinding.origin == "break-glass",
                    RoleBinding.revoked_at.is_(None),
                )
            )
            if bound is None:
                session.add(
                    RoleBinding(
                        id=f"binding:{uuid7()}",
                        principal_id=principal_id,
                        role=role,
                        origin="break-glass",
                        created_at=now,
                        created_by=context.principal.id,
                    )
                )
            session.add(
                ApiKey(
                    key_id=parsed.key_id,
                    principal_id=principal_id,
                    secret_hash=apikeys.secret_hash(pepper, parsed.key_id, parsed.secret),
                    scopes=[],
                    created_at=now,
                    break_glass=True,
                )
            )
        return IssuedKey(key_id=parsed.key_id, principal_id=principal_id, expires_at=None, token=token)

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


def _checked_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """ABAC attributes: short lowercase names, string values; ``clearance`` must name a classification.
    Names the authenticators set (scopes, roles, ...) cannot be stored, so no attribute can forge them."""
    checked: dict[str, str] = {}
    for name, value in attributes.items():
        if not _ATTRIBUTE.fullmatch(str(name)) or name in RESERVED_ATTRIBUTES:
            raise InvalidInput(f"{name!r} cannot be a principal attribute.")
        if not isinstance(value, str) or len(value) > 256:
            raise InvalidInput(f"Attribute {name!r} must be a string of at most 256 characters.")
        if name == "clearance":
            try:
                classification_rank(value)
            except KeyError:
                raise InvalidInput(
                    "clearance is one of: public, internal, confidential, restricted."
                ) from None
        checked[name] = value
    return checked


def _principal(session: Any, principal_id: str) -> PrincipalRow:
    row = session.get(PrincipalRow, principal_id)
    if row is None:
        raise NotFound(f"There is no principal {principal_id}.")
    return row  # type: ignore[no-any-return]


def _info(row: PrincipalRow) -> PrincipalInfo:
    return PrincipalInfo(row.id, row.type, row.display_name, dict(row.attributes), row.disabled)

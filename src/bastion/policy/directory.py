"""Who holds which role: role bindings (direct or through a group), read with a short cache.

A binding may be scoped to one resource type or one resource, and may expire (just-in-time elevations,
break-glass). Scope and expiry are applied per decision, so a binding never means more than it says and an
elevation ends on time even while cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select

from bastion.core.cache import Background, TtlCache
from bastion.core.clock import Clock
from bastion.spine.context import Resource
from bastion.store.database import Database
from bastion.store.tables import GroupMember, RoleBinding

# Read every second or so per principal in use: Core statements built once (see ``Database.snapshot``).
_GROUP_IDS = select(GroupMember.group_id).where(GroupMember.member_id == bindparam("principal"))
_GROUPS = _GROUP_IDS.order_by(GroupMember.group_id)
_BINDINGS = (
    select(
        RoleBinding.id,
        RoleBinding.role,
        RoleBinding.resource_type,
        RoleBinding.resource_id,
        RoleBinding.expires_at,
    )
    .where(
        or_(  # the principal's own bindings and its groups'
            RoleBinding.principal_id == bindparam("principal"),
            RoleBinding.principal_id.in_(_GROUP_IDS),
        ),
        RoleBinding.revoked_at.is_(None),
        or_(RoleBinding.expires_at.is_(None), RoleBinding.expires_at > bindparam("now")),
    )
    .order_by(RoleBinding.id)
)


@dataclass(frozen=True, slots=True)
class Binding:
    id: str
    role: str
    resource_type: str | None
    resource_id: str | None
    expires_at: datetime | None

    def applies(self, resource: Resource, now: datetime) -> bool:
        if self.expires_at is not None and self.expires_at <= now:
            return False
        if self.resource_type is None:
            return True
        return self.resource_type == resource.type and self.resource_id in (None, resource.id)


@dataclass(frozen=True, slots=True)
class Membership:
    groups: tuple[str, ...]
    bindings: tuple[Binding, ...]


class RoleDirectory:
    """``cache_seconds`` bounds how long an unassigned role or a revoked elevation takes to stop working on a
    replica."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        cache_seconds: float = 2.0,
        background: Background | None = None,
    ) -> None:
        self._database, self._clock = database, clock
        self._cache: TtlCache[str, Membership] = TtlCache(
            timedelta(seconds=cache_seconds), background=background
        )

    def membership(self, principal_id: str) -> Membership:
        return self._cache.get_or_load(principal_id, self._clock.now(), lambda: self._load(principal_id))

    def ready(self, principal_id: str) -> bool:
        """Whether ``membership`` answers from the cache (nothing to read)."""
        return self._cache.fresh(principal_id, self._clock.now()) is not None

    def _load(self, principal_id: str) -> Membership:
        now = self._clock.now()  # when it is read: a reload behind its users reads at its own time
        with self._database.snapshot() as connection:
            groups = tuple(connection.execute(_GROUPS, {"principal": principal_id}).scalars())
            rows = connection.execute(_BINDINGS, {"principal": principal_id, "now": now}).all()
        return Membership(groups, tuple(Binding(*row) for row in rows))

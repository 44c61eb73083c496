"""Who holds which role: role bindings (direct or through a group), read with a short cache.

A binding may be scoped to one resource type or one resource, and may expire (just-in-time elevations,
break-glass). Scope and expiry are applied per decision, so a binding never means more than it says and an
elevation ends on time even while cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from bastion.core.cache import Background, TtlCache
from bastion.core.clock import Clock
from bastion.spine.context import Resource
from bastion.store.database import Database
from bastion.store.tables import GroupMember, RoleBinding


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
        with self._database.read() as session:
            groups = tuple(
                session.scalars(
                    select(GroupMember.group_id)
                    .where(GroupMember.member_id == principal_id)
                    .order_by(GroupMember.group_id)
                )
            )
            rows = session.scalars(
                select(RoleBinding)
                .where(
                    RoleBinding.principal_id.in_((principal_id, *groups)),
                    RoleBinding.revoked_at.is_(None),
                    or_(RoleBinding.expires_at.is_(None), RoleBinding.expires_at > now),
                )
                .order_by(RoleBinding.id)
            ).all()
            bindings = tuple(
                Binding(row.id, row.role, row.resource_type, row.resource_id, row.expires_at) for row in rows
            )
        return Membership(groups, bindings)

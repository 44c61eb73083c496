"""Just-in-time access: a principal asks for a role (optionally on one resource) for a while, with a reason;
someone else with approval rights approves; the role binding then expires by itself, or is revoked early.

Self-approval is impossible twice over: the shipped Cedar policy ``default:forbid:self-approval`` forbids it
whatever else a policy says, and the service refuses it again after authorization. Every step is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from bastion.core.ids import uuid7
from bastion.policy.catalog import RESOURCE_TYPES, ROLES
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import Elevation, PrincipalRow, RoleBinding

PENDING, APPROVED, DENIED, REVOKED = "pending", "approved", "denied", "revoked"


@dataclass(frozen=True, slots=True)
class ElevationInfo:
    id: str
    requester_id: str
    role: str
    resource_type: str | None
    resource_id: str | None
    reason: str
    duration: timedelta
    state: str  # pending | approved | denied | revoked | expired
    requested_at: datetime
    decided_by: str | None
    expires_at: datetime | None


class ElevationService:
    def __init__(self, uow: UnitOfWork, database: Database, clock: Clock, max_duration: timedelta) -> None:
        self._uow, self._database, self._clock, self._max = uow, database, clock, max_duration

    def request(
        self,
        context: Context,
        role: str,
        reason: str,
        duration: timedelta,
        resource: Resource | None = None,
    ) -> ElevationInfo:
        if role not in ROLES:
            raise InvalidInput(f"Unknown role {role!r}; one of: {', '.join(ROLES)}.")
        if not reason.strip() or len(reason) > 500:
            raise InvalidInput("An elevation needs a reason (1-500 characters).")
        if not timedelta(minutes=1) <= duration <= self._max:
            raise InvalidInput(
                f"An elevation lasts between 1 and {int(self._max.total_seconds() // 60)} minutes."
            )
        if resource is not None and resource.type not in RESOURCE_TYPES:
            raise InvalidInput(f"Unknown resource type {resource.type!r}.")
        requester = context.principal.id
        details = {"role": role, "duration_s": int(duration.total_seconds()), "reason": reason}
        with self._uow.act(
            context, "identity.elevations.request", Resource("principal", requester), details=details
        ) as work:
            if work.session.get(PrincipalRow, requester) is None:
                raise InvalidInput("Only registered users and service accounts can ask for an elevation.")
            row = Elevation(
                id=f"elevation:{uuid7()}",
                requester_id=requester,
                role=role,
                resource_type=resource.type if resource else None,
                resource_id=resource.id if resource and resource.id != "*" else None,
                reason=reason,
                duration_s=int(duration.total_seconds()),
                state=PENDING,
                requested_at=self._clock.now(),
            )
            work.session.add(row)
            work.details["elevation_id"] = row.id
            return self._info(row)

    def approve(self, context: Context, elevation_id: str) -> ElevationInfo:
        """Grant the requested role until now + the requested duration."""
        with self._uow.act(context, "identity.elevations.approve", self._resource(elevation_id)) as work:
            row = self._pending(work.session, elevation_id, context)
            now = self._clock.now()
            row.state, row.decided_by, row.decided_at = APPROVED, context.principal.id, now
            row.expires_at = now + timedelta(seconds=row.duration_s)
            work.session.add(
                RoleBinding(
                    id=_binding_id(elevation_id),
                    principal_id=row.requester_id,
                    role=row.role,
                    resource_type=row.resource_type,
                    resource_id=row.resource_id,
                    origin="elevation",
                    created_at=now,
                    created_by=context.principal.id,
                    expires_at=row.expires_at,
                )
            )
            work.details.update(
                role=row.role, requester=row.requester_id, expires_at=row.expires_at.isoformat()
            )
            return self._info(row)

    def deny(self, context: Context, elevation_id: str) -> ElevationInfo:
        with self._uow.act(context, "identity.elevations.deny", self._resource(elevation_id)) as work:
            row = self._pending(work.session, elevation_id, context)
            row.state, row.decided_by, row.decided_at = DENIED, context.principal.id, self._clock.now()
            return self._info(row)

    def revoke(self, context: Context, elevation_id: str) -> ElevationInfo:
        """End an approved elevation early (its requester, an approver or a security admin)."""
        with self._uow.act(context, "identity.elevations.revoke", self._resource(elevation_id)) as work:
            row = work.session.get(Elevation, elevation_id)
            if row is None:
                raise NotFound(f"There is no elevation {elevation_id}.")
            if row.state not in (PENDING, APPROVED):
                raise Conflict(f"Elevation {elevation_id} is {row.state}.")
            now = self._clock.now()
            row.state = REVOKED
            binding = work.session.get(RoleBinding, _binding_id(elevation_id))
            if binding is not None and binding.revoked_at is None:
                binding.revoked_at = now
            return self._info(row)

    def list(self, context: Context, state: str | None = None) -> list[ElevationInfo]:
        with self._uow.read(context, "identity.elevations.read", Resource("elevation", "*")) as work:
            rows = work.session.scalars(select(Elevation).order_by(Elevation.id)).all()
            infos = [self._info(row) for row in rows]
            work.details["returned"] = len(infos)
        return [info for info in infos if state is None or info.state == state]

    def _resource(self, elevation_id: str) -> Resource:
        """The elevation with its requester as owner, so policies can tell requester from approver."""
        with self._database.read() as session:
            owner = session.scalar(select(Elevation.requester_id).where(Elevation.id == elevation_id))
        return Resource("elevation", elevation_id, attributes={"owner": owner} if owner else {})

    def _pending(self, session: Any, elevation_id: str, context: Context) -> Elevation:
        row: Elevation | None = session.get(Elevation, elevation_id)
        if row is None:
            raise NotFound(f"There is no elevation {elevation_id}.")
        if row.requester_id == context.principal.id:  # defence in depth: policy forbids this already
            raise PermissionDenied("Nobody approves or denies their own elevation.")
        if row.state != PENDING:
            raise Conflict(f"Elevation {elevation_id} is already {row.state}.")
        return row

    def _info(self, row: Elevation) -> ElevationInfo:
        state = row.state
        if state == APPROVED and row.expires_at is not None and row.expires_at <= self._clock.now():
            state = "expired"
        return ElevationInfo(
            id=row.id,
            requester_id=row.requester_id,
            role=row.role,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            reason=row.reason,
            duration=timedelta(seconds=row.duration_s),
            state=state,
            requested_at=row.requested_at,
            decided_by=row.decided_by,
            expires_at=row.expires_at,
        )


def _binding_id(elevation_id: str) -> str:
    return f"binding:{elevation_id}"

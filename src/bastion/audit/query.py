"""Reading the audit log: filtered, paginated, and itself authorized and audited."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from bastion.audit.canonical import format_time
from bastion.core.errors import InvalidInput
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Outcome
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import AuditEvent

MAX_PAGE = 1000
AUDIT_LOG = Resource("audit_log", "main")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None  # keyset pagination: only events with a greater seq
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.")
        if self.after_seq is not None and self.after_seq < 0:
            raise InvalidInput("after_seq must not be negative.")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput("Times must include a timezone, e.g. 2026-01-31T12:00:00Z.")
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("since must not be later than until.")

    def describe(self) -> dict[str, Any]:
        """The filter as audit details (what was searched for is itself evidence)."""
        return {
            key: (str(value) if value is not None else None)
            for key, value in asdict(self).items()
            if value is not None
        }


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    event_id: str
    schema_version: int
    occurred_at: datetime
    actor_id: str
    actor_type: str
    auth_method: str
    action: str
    resource_type: str
    resource_id: str
    outcome: str
    reason: str
    policy_ids: list[str]
    request_id: str
    source_address: str | None
    user_agent: str | None
    purpose: str | None
    data_categories: list[str]
    details: dict[str, Any]
    leaf_hash: str  # hex; what ``bastion.client.event_leaf_hash`` recomputes from the other fields

    @classmethod
    def of(cls, row: AuditEvent) -> EventView:
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        values["leaf_hash"] = row.leaf_hash.hex()
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        """JSON with ``occurred_at`` in the canonical form the leaf hash commits to."""
        data = asdict(self)
        data["occurred_at"] = format_time(self.occurred_at)
        return data


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[EventView]
    next_after_seq: int | None  # pass as after_seq for the next page; None when this was the last


class AuditQueries:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def search(self, context: Context, query: AuditFilter) -> EventPage:
        self._uow.settle()
        with self._uow.read(context, "audit.read", AUDIT_LOG, details={"filter": query.describe()}) as work:
            rows = work.session.scalars(_statement(query)).all()
            events = [EventView.of(row) for row in rows[: query.limit]]
            work.details["returned"] = len(events)
        more = len(rows) > query.limit
        return EventPage(events=events, next_after_seq=events[-1].seq if more and events else None)


def _statement(query: AuditFilter) -> Select[AuditEvent]:
    statement = select(AuditEvent)
    if query.after_seq is not None:
        statement = statement.where(AuditEvent.seq > query.after_seq)
    if query.actor:
        statement = statement.where(AuditEvent.actor_id == query.actor)
    if query.action:
        statement = statement.where(AuditEvent.action == query.action)
    if query.resource_type:
        statement = statement.where(AuditEvent.resource_type == query.resource_type)
    if query.resource_id:
        statement = statement.where(AuditEvent.resource_id == query.resource_id)
    if query.outcome:
        statement = statement.where(AuditEvent.outcome == query.outcome.value)
    if query.since:
        statement = statement.where(AuditEvent.occurred_at >= query.since)
    if query.until:
        statement = statement.where(AuditEvent.occurred_at <= query.until)
    # One extra row tells whether another page exists without a COUNT.
    return statement.order_by(AuditEvent.seq).limit(query.limit + 1)

"""GET /v1/audit/events: search the audit log (itself authorized and audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bastion.api.deps import RequestContext
from bastion.audit.query import MAX_PAGE, AuditFilter
from bastion.spine.interfaces import Outcome

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    seq: int
    event_id: str
    schema_version: int
    occurred_at: str = Field(description="RFC 3339 UTC with microseconds, as the leaf hash commits to it")
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
    leaf_hash: str


class AuditEventPage(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int | None


@router.get("/events", response_model=AuditEventPage)
def list_events(
    request: Request,
    context: RequestContext,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=255)] = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditEventPage:
    query = AuditFilter(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    page = request.app.state.services.audit.search(context, query)
    return AuditEventPage(
        events=[AuditEventOut.model_validate(event.as_json()) for event in page.events],
        next_after_seq=page.next_after_seq,
    )

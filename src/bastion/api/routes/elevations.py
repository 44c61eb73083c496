"""Just-in-time elevation over HTTP: ask, approve or deny (never one's own), revoke, list."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from bastion.api.deps import RequestContext
from bastion.core.errors import InvalidInput
from bastion.identity.elevation import ElevationInfo, ElevationService
from bastion.spine.context import Resource

router = APIRouter(prefix="/v1/elevations", tags=["identity"])
ElevationId = Annotated[str, Path(max_length=64)]


class ElevationRequest(BaseModel):
    role: str = Field(max_length=64)
    reason: str = Field(min_length=1, max_length=500)
    duration_minutes: int = Field(ge=1, le=7 * 24 * 60)
    resource_type: str | None = Field(default=None, max_length=64)
    resource_id: str | None = Field(default=None, max_length=255)


class ElevationOut(BaseModel):
    id: str
    requester_id: str
    role: str
    resource_type: str | None
    resource_id: str | None
    reason: str
    duration_minutes: int
    state: str
    requested_at: str
    decided_by: str | None
    expires_at: str | None


def _service(request: Request) -> ElevationService:
    service: ElevationService = request.app.state.services.elevations
    return service


def _out(info: ElevationInfo) -> ElevationOut:
    return ElevationOut(
        id=info.id,
        requester_id=info.requester_id,
        role=info.role,
        resource_type=info.resource_type,
        resource_id=info.resource_id,
        reason=info.reason,
        duration_minutes=int(info.duration.total_seconds() // 60),
        state=info.state,
        requested_at=info.requested_at.isoformat(),
        decided_by=info.decided_by,
        expires_at=info.expires_at.isoformat() if info.expires_at else None,
    )


@router.post("", status_code=201, response_model=ElevationOut)
def request_elevation(request: Request, context: RequestContext, body: ElevationRequest) -> ElevationOut:
    if body.resource_id is not None and body.resource_type is None:
        raise InvalidInput("A resource id needs its resource type.")
    scope = Resource(body.resource_type, body.resource_id or "*") if body.resource_type else None
    return _out(
        _service(request).request(
            context, body.role, body.reason, timedelta(minutes=body.duration_minutes), scope
        )
    )


@router.get("", response_model=list[ElevationOut])
def list_elevations(
    request: Request,
    context: RequestContext,
    state: Annotated[Literal["pending", "approved", "denied", "revoked", "expired"] | None, Query()] = None,
) -> list[ElevationOut]:
    return [_out(info) for info in _service(request).list(context, state)]


@router.post("/{elevation_id}/approve", response_model=ElevationOut)
def approve(request: Request, context: RequestContext, elevation_id: ElevationId) -> ElevationOut:
    return _out(_service(request).approve(context, elevation_id))


@router.post("/{elevation_id}/deny", response_model=ElevationOut)
def deny(request: Request, context: RequestContext, elevation_id: ElevationId) -> ElevationOut:
    return _out(_service(request).deny(context, elevation_id))


@router.post("/{elevation_id}/revoke", response_model=ElevationOut)
def revoke(request: Request, context: RequestContext, elevation_id: ElevationId) -> ElevationOut:
    return _out(_service(request).revoke(context, elevation_id))

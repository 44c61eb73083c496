"""Identity administration over HTTP: principals, groups, role bindings, API keys, token revocation.

Thin adapters over ``IdentityService``: the same authorization and audit as the CLI. A new API key's token is
in the 201 response and nowhere else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from bastion.api.deps import RequestContext
from bastion.core.errors import InvalidInput
from bastion.identity import IdentityService, IssuedKey, PrincipalInfo
from bastion.spine.context import Resource

router = APIRouter(prefix="/v1", tags=["identity"])
PrincipalId = Annotated[str, Path(max_length=210)]


class NewPrincipal(BaseModel):
    id: str = Field(max_length=210)
    display_name: str = Field(default="", max_length=255)
    attributes: dict[str, str] = Field(default_factory=dict, max_length=64)


class PrincipalOut(BaseModel):
    id: str
    type: str
    display_name: str
    attributes: dict[str, Any]
    disabled: bool


class NewRoleBinding(BaseModel):
    role: str = Field(max_length=64)
    resource_type: str | None = Field(default=None, max_length=64, description="Scope to one resource type")
    resource_id: str | None = Field(default=None, max_length=255, description="... or to one resource")
    expires_in_minutes: int | None = Field(default=None, ge=1, le=525_600)


class RoleBindingOut(BaseModel):
    id: str
    principal_id: str
    role: str
    resource_type: str | None
    resource_id: str | None
    origin: str
    expires_at: str | None


class NewMember(BaseModel):
    member_id: str = Field(max_length=210)


class NewApiKey(BaseModel):
    expires_in_days: int | None = Field(default=90, ge=1, le=366)
    scopes: list[str] = Field(default_factory=list, max_length=32)


class IssuedKeyOut(BaseModel):
    key_id: str
    principal_id: str
    expires_at: str | None
    token: str = Field(description="Shown once; only a keyed hash is kept.")


class Rotation(BaseModel):
    overlap_minutes: int = Field(default=60, ge=0, le=10_080)


class TokenRevocation(BaseModel):
    jti: str = Field(min_length=1, max_length=64)


def _services(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.services.identity
    return service


@router.post("/principals", status_code=201, response_model=PrincipalOut)
def create_principal(request: Request, context: RequestContext, body: NewPrincipal) -> PrincipalOut:
    return _principal(
        _services(request).create_principal(context, body.id, body.display_name, body.attributes)
    )


@router.get("/principals", response_model=list[PrincipalOut])
def list_principals(request: Request, context: RequestContext) -> list[PrincipalOut]:
    return [_principal(info) for info in _services(request).list_principals(context)]


@router.post("/principals/{principal_id}/roles", status_code=201)
def assign_role(
    request: Request, context: RequestContext, principal_id: PrincipalId, body: NewRoleBinding
) -> dict[str, str]:
    if body.resource_id is not None and body.resource_type is None:
        raise InvalidInput("A resource id needs its resource type.")
    scope = Resource(body.resource_type, body.resource_id or "*") if body.resource_type else None
    lifetime = timedelta(minutes=body.expires_in_minutes) if body.expires_in_minutes else None
    binding_id = _services(request).assign_role(
        context, principal_id, body.role, resource=scope, expires_in=lifetime
    )
    return {"binding_id": binding_id}


@router.get("/principals/{principal_id}/roles", response_model=list[RoleBindingOut])
def list_roles(request: Request, context: RequestContext, principal_id: PrincipalId) -> list[RoleBindingOut]:
    return [
        RoleBindingOut(
            id=b.id,
            principal_id=b.principal_id,
            role=b.role,
            resource_type=b.resource_type,
            resource_id=b.resource_id,
            origin=b.origin,
            expires_at=b.expires_at.isoformat() if b.expires_at else None,
        )
        for b in _services(request).roles(context, principal_id)
    ]


@router.delete("/roles/{binding_id}", status_code=204)
def unassign_role(
    request: Request, context: RequestContext, binding_id: Annotated[str, Path(max_length=64)]
) -> Response:
    _services(request).unassign_role(context, binding_id)
    return Response(status_code=204)


@router.post("/groups/{group_id}/members", status_code=204)
def add_member(request: Request, context: RequestContext, group_id: PrincipalId, body: NewMember) -> Response:
    _services(request).add_member(context, group_id, body.member_id)
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{member_id}", status_code=204)
def remove_member(
    request: Request, context: RequestContext, group_id: PrincipalId, member_id: PrincipalId
) -> Response:
    _services(request).remove_member(context, group_id, member_id)
    return Response(status_code=204)


@router.post("/principals/{principal_id}/apikeys", status_code=201, response_model=IssuedKeyOut)
def create_api_key(
    request: Request, context: RequestContext, principal_id: PrincipalId, body: NewApiKey
) -> IssuedKeyOut:
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    issued = _services(request).create_api_key(
        context, principal_id, expires_in=lifetime, scopes=tuple(body.scopes)
    )
    return _issued(issued)


@router.delete("/apikeys/{key_id}", status_code=204)
def revoke_api_key(
    request: Request, context: RequestContext, key_id: Annotated[str, Path(max_length=32)]
) -> Response:
    _services(request).revoke_api_key(context, key_id)
    return Response(status_code=204)


@router.post("/apikeys/{key_id}/rotate", status_code=201, response_model=IssuedKeyOut)
def rotate_api_key(
    request: Request, context: RequestContext, key_id: Annotated[str, Path(max_length=32)], body: Rotation
) -> IssuedKeyOut:
    return _issued(
        _services(request).rotate_api_key(context, key_id, timedelta(minutes=body.overlap_minutes))
    )


@router.post("/tokens/revoke", status_code=204)
def revoke_token(request: Request, context: RequestContext, body: TokenRevocation) -> Response:
    _services(request).revoke_token(context, body.jti)
    return Response(status_code=204)


def _principal(info: PrincipalInfo) -> PrincipalOut:
    return PrincipalOut(
        id=info.id,
        type=info.type,
        display_name=info.display_name,
        attributes=info.attributes,
        disabled=info.disabled,
    )


def _issued(issued: IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(
        key_id=issued.key_id,
        principal_id=issued.principal_id,
        token=issued.token,
        expires_at=issued.expires_at.isoformat() if issued.expires_at else None,
    )


@router.post("/principals/{principal_id}/disable", response_model=PrincipalOut)
def disable_principal(request: Request, context: RequestContext, principal_id: PrincipalId) -> PrincipalOut:
    """Refuse every key and token of the principal (within 2 seconds)."""
    return _principal(_services(request).set_disabled(context, principal_id, disabled=True))


@router.post("/principals/{principal_id}/enable", response_model=PrincipalOut)
def enable_principal(request: Request, context: RequestContext, principal_id: PrincipalId) -> PrincipalOut:
    return _principal(_services(request).set_disabled(context, principal_id, disabled=False))

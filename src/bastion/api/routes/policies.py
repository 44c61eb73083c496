"""Cedar policies over HTTP: the schema, the shipped set, custom versions, validation and activation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from bastion.api.deps import RequestContext
from bastion.policy.admin import PolicyAdmin, PolicyVersionInfo
from bastion.policy.catalog import ROLES
from bastion.policy.compiler import MAX_POLICY_BYTES

router = APIRouter(prefix="/v1/policies", tags=["policies"])
Version = Annotated[int, Path(ge=0, le=2**31 - 1)]


class PolicyText(BaseModel):
    text: str = Field(max_length=MAX_POLICY_BYTES)
    comment: str = Field(default="", max_length=500)


class PolicyVersionOut(BaseModel):
    version: int
    sha256: str
    comment: str
    created_at: str
    created_by: str
    active: bool
    policy_ids: list[str]


class PolicyDocument(BaseModel):
    version: int
    text: str


def _admin(request: Request) -> PolicyAdmin:
    admin: PolicyAdmin = request.app.state.services.policies
    return admin


def _out(info: PolicyVersionInfo) -> PolicyVersionOut:
    return PolicyVersionOut(
        version=info.version,
        sha256=info.sha256,
        comment=info.comment,
        created_at=info.created_at.isoformat(),
        created_by=info.created_by,
        active=info.active,
        policy_ids=list(info.policy_ids),
    )


@router.get("", response_model=list[PolicyVersionOut])
def list_versions(request: Request, context: RequestContext) -> list[PolicyVersionOut]:
    return [_out(info) for info in _admin(request).versions(context)]


@router.get("/active", response_model=PolicyDocument)
def active(request: Request, context: RequestContext) -> PolicyDocument:
    version, text = _admin(request).text(context)
    return PolicyDocument(version=version, text=text)


@router.get("/reference")
def reference(request: Request, context: RequestContext) -> dict[str, object]:
    """The schema, the shipped policies and the roles: what custom policies are written against."""
    _admin(request).versions(context)  # authorizes (policies.read) and audits the look
    return {"schema": PolicyAdmin.schema(), "defaults": PolicyAdmin.defaults(), "roles": ROLES}


@router.get("/{version}", response_model=PolicyDocument)
def show(request: Request, context: RequestContext, version: Version) -> PolicyDocument:
    number, text = _admin(request).text(context, version)
    return PolicyDocument(version=number, text=text)


@router.post("/validate")
def validate(request: Request, context: RequestContext, body: PolicyText) -> dict[str, object]:
    """Check a policy set against the schema without storing it (400 with every error if it fails)."""
    compiled = _admin(request).validate(context, body.text)
    return {"valid": True, "policy_ids": list(compiled.custom_ids)}


@router.post("", status_code=201, response_model=PolicyVersionOut)
def write(request: Request, context: RequestContext, body: PolicyText) -> PolicyVersionOut:
    """Store a new version (validated first; not active until activated)."""
    return _out(_admin(request).write(context, body.text, body.comment))


@router.post("/{version}/activate", status_code=204)
def activate(request: Request, context: RequestContext, version: Version) -> Response:
    _admin(request).activate(context, version)
    return Response(status_code=204)

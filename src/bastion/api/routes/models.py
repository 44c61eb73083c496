"""The model registry over HTTP: models, streamed version uploads (scanned before acceptance), evidence,
reviews, stage changes, verified downloads. Thin adapters: every rule lives in the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RequestContext
from bastion.api.serialize import plain
from bastion.api.streaming import stream_file
from bastion.models.errors import ArtifactTooLarge
from bastion.models.gates import GatePolicy
from bastion.models.intake import ModelIntake, ThirdParty
from bastion.models.loader import ModelLoader
from bastion.models.provenance import DatasetRef
from bastion.models.records import ModelInfo, VersionInfo
from bastion.models.registry import GLOBAL_GATE, ModelRegistry

router = APIRouter(tags=["models"])
ModelName = Annotated[str, Path(max_length=128)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ModelCreate(BaseModel):
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=2000)
    classification: Literal["public", "internal", "confidential", "restricted"] = "internal"


class ModelOut(BaseModel):
    name: str
    description: str
    classification: str
    created_by: str
    created_at: str


class StageChangeOut(BaseModel):
    from_stage: str | None
    to_stage: str
    by: str
    at: str
    reason: str


class VersionOut(BaseModel):
    model: str
    version: int
    stage: str
    origin: str
    filename: str
    size: int
    sha256: str
    format: str
    scan_verdict: str
    scan_report: dict[str, Any]
    scan_accepted_by: str | None
    signed: bool
    provenance: dict[str, Any] | None
    input_schema: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    gate_result: dict[str, Any] | None
    source: dict[str, Any] | None
    vetted_by: str | None
    approvals: list[str]
    history: list[StageChangeOut]
    created_by: str
    created_at: str
    shredded: bool
    archived: bool


class Evaluation(BaseModel):
    dataset: DatasetRef
    metrics: dict[str, float] = Field(min_length=1, max_length=100)


class Review(BaseModel):
    comment: str = Field(default="", max_length=2000)


class Promotion(BaseModel):
    stage: Literal["approved", "production"]


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class Retirement(Reason):
    archive: bool = False


def _model_out(info: ModelInfo) -> ModelOut:
    return ModelOut.model_validate(plain(info))


def _out(info: VersionInfo) -> VersionOut:
    return VersionOut.model_validate(plain(info))


def _registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.services.models
    return registry


@router.post("/v1/models", status_code=201, response_model=ModelOut)
def create_model(request: Request, context: RequestContext, body: ModelCreate) -> ModelOut:
    info = _registry(request).create(
        context, body.name, description=body.description, classification=body.classification
    )
    return _model_out(info)


@router.get("/v1/models", response_model=list[ModelOut])
def list_models(request: Request, context: RequestContext) -> list[ModelOut]:
    return [_model_out(info) for info in _registry(request).list_models(context)]


@router.get("/v1/models/{name}/versions", response_model=list[VersionOut])
def list_versions(request: Request, context: RequestContext, name: ModelName) -> list[VersionOut]:
    return [_out(info) for info in _registry(request).versions(context, name)]


@router.get("/v1/models/{name}/versions/{version}", response_model=VersionOut)
def get_version(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber
) -> VersionOut:
    return _out(_registry(request).version(context, name, version))


async def _receive(
    request: Request, context: RequestContext, name: str, filename: str, third_party: ThirdParty | None
) -> VersionOut:
    intake: ModelIntake = request.app.state.services.intake
    with ExitStack() as stack:
        upload = await run_in_threadpool(
            stack.enter_context, intake.receive(context, name, filename, third_party=third_party)
        )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > intake.max_bytes:
            raise ArtifactTooLarge(f"The artifact is larger than the limit of {intake.max_bytes} bytes.")
        async for chunk in request.stream():
            upload.write(chunk)
        info = await run_in_threadpool(intake.accept, context, upload, third_party=third_party)
        await run_in_threadpool(stack.close)  # removing the workspace touches the disk: off the event loop
    return _out(info)


@router.post("/v1/models/{name}/versions", status_code=201, response_model=VersionOut)
async def push_version(
    request: Request,
    context: RequestContext,
    name: ModelName,
    filename: Annotated[str, Query(max_length=128)],
) -> VersionOut:
    """The body is the artifact (application/octet-stream), streamed to disk as it arrives."""
    return await _receive(request, context, name, filename, None)


@router.post("/v1/models/{name}/imports", status_code=201, response_model=VersionOut)
async def import_version(
    request: Request,
    context: RequestContext,
    name: ModelName,
    filename: Annotated[str, Query(max_length=128)],
    sha256: Annotated[str, Query(min_length=64, max_length=64)],
    source: Annotated[str, Query(max_length=1000)],
    licence: Annotated[str, Query(max_length=200)],
) -> VersionOut:
    """A third-party model: the body must have the pinned ``sha256``; source and licence are recorded."""
    return await _receive(request, context, name, filename, ThirdParty(sha256, source, licence))


@router.put("/v1/models/{name}/versions/{version}/provenance", response_model=VersionOut)
def record_provenance(
    request: Request,
    context: RequestContext,
    name: ModelName,
    version: VersionNumber,
    body: Annotated[dict[str, Any], Body()],
) -> VersionOut:
    return _out(_registry(request).record_provenance(context, name, version, body))


@router.put("/v1/models/{name}/versions/{version}/input-schema", response_model=VersionOut)
def declare_input_schema(
    request: Request,
    context: RequestContext,
    name: ModelName,
    version: VersionNumber,
    body: Annotated[dict[str, Any], Body()],
) -> VersionOut:
    """A JSON Schema for one input row (types, ranges, categories, feature count), before approval."""
    return _out(_registry(request).declare_input_schema(context, name, version, body))


@router.post("/v1/models/{name}/versions/{version}/evaluations", response_model=VersionOut)
def record_evaluation(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Evaluation
) -> VersionOut:
    return _out(_registry(request).record_evaluation(context, name, version, body.dataset, body.metrics))


@router.post("/v1/models/{name}/versions/{version}/approvals", response_model=VersionOut)
def approve(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Review
) -> VersionOut:
    return _out(_registry(request).approve(context, name, version, body.comment))


@router.post("/v1/models/{name}/versions/{version}/vetting", response_model=VersionOut)
def vet(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Review
) -> VersionOut:
    return _out(_registry(request).vet(context, name, version, body.comment))


@router.post("/v1/models/{name}/versions/{version}/promotions", response_model=VersionOut)
def promote(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Promotion
) -> VersionOut:
    return _out(_registry(request).promote(context, name, version, body.stage))


@router.post("/v1/models/{name}/versions/{version}/quarantine", response_model=VersionOut)
def quarantine(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Reason
) -> VersionOut:
    return _out(_registry(request).quarantine(context, name, version, body.reason))


@router.post("/v1/models/{name}/versions/{version}/retirement", response_model=VersionOut)
def retire(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber, body: Retirement
) -> VersionOut:
    return _out(_registry(request).retire(context, name, version, reason=body.reason, archive=body.archive))


@router.get("/v1/models/{name}/versions/{version}/signature")
def signature(request: Request, context: RequestContext, name: ModelName, version: VersionNumber) -> Response:
    """The OMS signature (Sigstore bundle) of the artifact, for ``model_signing verify key``."""
    bundle = _registry(request).signature(context, name, version)
    return Response(bundle, media_type="application/json")


@router.get("/v1/models/{name}/versions/{version}/artifact")
def download(request: Request, context: RequestContext, name: ModelName, version: VersionNumber) -> Response:
    """The artifact's bytes — only after the same checks as any load (stage, scan, signature, digest)."""
    loader: ModelLoader = request.app.state.services.loader

    @contextmanager
    def verified() -> Iterator[FilePath]:
        with loader.open(context, name, version, action="models.download") as loaded:
            headers.update({
                "content-disposition": f'attachment; filename="{loaded.info.filename}"',
                "x-bastion-sha256": loaded.info.sha256,
                "content-length": str(loaded.info.size),
            })  # fmt: skip
            yield loaded.path

    headers: dict[str, str] = {}
    return stream_file(verified(), headers, "application/octet-stream")


@router.get("/v1/models/{name}/gate", response_model=GatePolicy)
def get_gate(request: Request, context: RequestContext, name: ModelName) -> GatePolicy:
    return _registry(request).gate(context, name)


@router.put("/v1/models/{name}/gate", response_model=GatePolicy)
def set_gate(request: Request, context: RequestContext, name: ModelName, body: GatePolicy) -> GatePolicy:
    return _registry(request).set_gate(context, name, body)


@router.put("/v1/registry/gate", response_model=GatePolicy)
def set_global_gate(request: Request, context: RequestContext, body: GatePolicy) -> GatePolicy:
    """The gate for every model without its own."""
    return _registry(request).set_gate(context, GLOBAL_GATE, body)


@router.get("/v1/registry/public-key")
def public_key(request: Request, context: RequestContext) -> Response:
    """The registry's signing key (PEM): ``model_signing verify key --public_key`` checks downloads."""
    return Response(_registry(request).public_key(context), media_type="application/x-pem-file")

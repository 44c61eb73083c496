"""Datasets over HTTP: create with a schema, streamed uploads checked before anything is stored, exports for
a declared purpose (``X-Bastion-Purpose``), quarantine reports, re-identification, and the PII engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RequestContext
from bastion.api.serialize import plain
from bastion.api.streaming import stream_file
from bastion.data.errors import DataTooLarge
from bastion.data.export import DataExport
from bastion.data.ingest import DataIngest
from bastion.data.records import DatasetInfo, DatasetVersionInfo
from bastion.data.registry import DatasetRegistry

router = APIRouter(tags=["data"])
DatasetName = Annotated[str, Path(max_length=128)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


class DatasetCreate(BaseModel):
    name: str = Field(max_length=128)
    dataset_schema: dict[str, Any] = Field(alias="schema")
    purposes: list[str] = Field(min_length=1, max_length=50)
    region: str = Field(max_length=32)
    description: str = Field(default="", max_length=2000)
    retention_days: int | None = Field(default=None, ge=1, le=36500)


class DatasetOut(BaseModel):
    name: str
    description: str
    purposes: list[str]
    region: str
    retention_days: int | None
    classification: str
    dataset_schema: dict[str, Any] = Field(serialization_alias="schema")
    created_by: str
    created_at: str


class VersionOut(BaseModel):
    dataset: str
    version: int
    sha256: str
    source_format: str
    source_sha256: str
    rows: int
    size: int
    report: dict[str, Any]
    created_by: str
    created_at: str


class DatasetDetail(DatasetOut):
    versions: list[VersionOut]


class Reidentify(BaseModel):
    field: str = Field(max_length=64)
    token: str = Field(max_length=64)


class AnalyzeRequest(BaseModel):
    text: str = Field(max_length=1_000_000)
    entities: list[str] | None = Field(default=None, max_length=50)
    threshold: float = Field(default=0.4, ge=0, le=1)


def _dataset_out(info: DatasetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "purposes": list(info.purposes),
        "region": info.region,
        "retention_days": info.retention_days,
        "classification": info.schema.classification,
        "dataset_schema": info.schema.model_dump(mode="json", exclude_none=True),
        "created_by": info.created_by,
        "created_at": info.created_at.isoformat(),
    }


def _version_out(info: DatasetVersionInfo) -> VersionOut:
    return VersionOut.model_validate(plain(info))


def _registry(request: Request) -> DatasetRegistry:
    registry: DatasetRegistry = request.app.state.services.datasets
    return registry


@router.post("/v1/datasets", status_code=201, response_model=DatasetOut, response_model_by_alias=True)
def create_dataset(request: Request, context: RequestContext, body: DatasetCreate) -> DatasetOut:
    info = _registry(request).create(
        context,
        body.name,
        body.dataset_schema,
        purposes=body.purposes,
        region=body.region,
        description=body.description,
        retention_days=body.retention_days,
    )
    return DatasetOut(**_dataset_out(info))


@router.get("/v1/datasets", response_model=list[DatasetOut], response_model_by_alias=True)
def list_datasets(request: Request, context: RequestContext) -> list[DatasetOut]:
    return [DatasetOut(**_dataset_out(info)) for info in _registry(request).list_datasets(context)]


@router.get("/v1/datasets/{name}", response_model=DatasetDetail, response_model_by_alias=True)
def describe_dataset(request: Request, context: RequestContext, name: DatasetName) -> DatasetDetail:
    info, versions = _registry(request).describe(context, name)
    return DatasetDetail(**_dataset_out(info), versions=[_version_out(v) for v in versions])


@router.put("/v1/datasets/{name}/schema", response_model=DatasetOut, response_model_by_alias=True)
def set_schema(
    request: Request, context: RequestContext, name: DatasetName, body: dict[str, Any]
) -> DatasetOut:
    return DatasetOut(**_dataset_out(_registry(request).set_schema(context, name, body)))


@router.post("/v1/datasets/{name}/versions", status_code=201, response_model=VersionOut)
async def ingest(
    request: Request,
    context: RequestContext,
    name: DatasetName,
    filename: Annotated[str, Query(max_length=128)],
) -> VersionOut:
    """The body is the file (any content type: the format is read from the bytes), streamed as it arrives."""
    service: DataIngest = request.app.state.services.data_ingest
    with ExitStack() as stack:
        upload = await run_in_threadpool(stack.enter_context, service.receive(context, name, filename))
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > service.max_bytes:
            raise DataTooLarge(f"The upload is larger than the limit of {service.max_bytes} bytes.")
        async for chunk in request.stream():
            upload.write(chunk)
        info = await run_in_threadpool(service.accept, context, upload)
        await run_in_threadpool(stack.close)
    return _version_out(info)


@router.get("/v1/datasets/{name}/quarantine")
def quarantine(request: Request, context: RequestContext, name: DatasetName) -> list[dict[str, Any]]:
    return _registry(request).quarantined(context, name)


@router.get("/v1/datasets/{name}/versions/{version}/export")
def export(
    request: Request,
    context: RequestContext,
    name: DatasetName,
    version: VersionNumber,
    format: Annotated[Literal["csv", "jsonl", "parquet"], Query()] = "csv",
) -> Response:
    """The version for the purpose declared in ``X-Bastion-Purpose``: minimised and transformed."""
    service: DataExport = request.app.state.services.data_export
    headers: dict[str, str] = {}

    @contextmanager
    def exported() -> Iterator[FilePath]:
        with service.workspace() as work:
            target = work / f"{name}-{version}.{format}"
            report = service.export(context, name, version, format, target)
            headers.update({
                "content-disposition": f'attachment; filename="{target.name}"',
                "x-bastion-rows": str(report.rows),
                "x-bastion-dropped-fields": ",".join(report.dropped),
            })  # fmt: skip
            yield target

    media = {"csv": "text/csv", "jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}
    return stream_file(exported(), headers, media[format])


@router.post("/v1/datasets/{name}/reidentify")
def reidentify(
    request: Request, context: RequestContext, name: DatasetName, body: Reidentify
) -> dict[str, str]:
    return {"value": _registry(request).reidentify(context, name, body.field, body.token)}


@router.post("/v1/pii/analyze")
def analyze(request: Request, context: RequestContext, body: AnalyzeRequest) -> dict[str, Any]:
    engine = request.app.state.services.pii
    results = _registry(request).analyze(context, engine, body.text, body.entities, body.threshold)
    return {"results": [r.to_dict() for r in results], "ner": engine.ner_status}

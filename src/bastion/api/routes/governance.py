"""Data protection II over HTTP: differentially private queries and budgets, labels and their integrity
report, data-subject requests, retention, and lineage. Thin adapters over the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from bastion.api.deps import RequestContext
from bastion.api.serialize import plain
from bastion.data.privacy import DpQuery

router = APIRouter(tags=["data protection"])
DatasetName = Annotated[str, Path(max_length=128)]
ModelName = Annotated[str, Path(max_length=128)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _services(request: Request) -> Any:
    return request.app.state.services


class SubjectRequestIn(BaseModel):
    kind: str = Field(max_length=16)
    subject: str = Field(min_length=1, max_length=512)
    changes: dict[str, Any] | None = Field(default=None, max_length=100)


@router.post("/v1/datasets/{name}/queries")
def query(
    request: Request,
    context: RequestContext,
    name: DatasetName,
    body: DpQuery,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """A differentially private aggregate, charged to the caller's privacy budget on the dataset."""
    return plain(_services(request).private_queries.query(context, name, version, body))


@router.get("/v1/datasets/{name}/privacy-spend")
def privacy_spend(request: Request, context: RequestContext, name: DatasetName) -> dict[str, Any]:
    spent = _services(request).private_queries.spent(context, name)
    return {consumer: plain(total) for consumer, total in spent.items()}


@router.put("/v1/datasets/{name}/labels")
def write_labels(
    request: Request,
    context: RequestContext,
    name: DatasetName,
    labels: Annotated[dict[str, str], Body(max_length=10_000)],
) -> dict[str, int]:
    """The caller's labels (``{item: label}``): labellers bound to this dataset only; each change audited."""
    return {"changed": _services(request).labels.write(context, name, labels)}


@router.get("/v1/datasets/{name}/labels/{item}")
def label_history(request: Request, context: RequestContext, name: DatasetName, item: str) -> list[Any]:
    return list(_services(request).labels.history(context, name, item))


@router.post("/v1/datasets/{name}/labels/report")
def label_report(
    request: Request,
    context: RequestContext,
    name: DatasetName,
    reference: Annotated[dict[str, str] | None, Body(max_length=1_000_000)] = None,
) -> list[dict[str, Any]]:
    """Per labeller: disagreement with consensus (and with a reference model's labels, if sent); outliers."""
    return [plain(score) for score in _services(request).labels.report(context, name, reference)]


@router.post("/v1/subject-requests", status_code=201)
def register_subject_request(
    request: Request, context: RequestContext, body: SubjectRequestIn
) -> dict[str, Any]:
    info = _services(request).subjects.register(context, body.kind, body.subject, body.changes)
    return plain(info)


@router.get("/v1/subject-requests")
def subject_requests(
    request: Request, context: RequestContext, overdue: bool = False
) -> list[dict[str, Any]]:
    return [plain(info) for info in _services(request).subjects.requests(context, overdue_only=overdue)]


@router.post("/v1/subject-requests/{request_id}/run")
def run_subject_request(
    request: Request, context: RequestContext, request_id: Annotated[str, Path(max_length=64)]
) -> dict[str, Any]:
    return plain(_services(request).subjects.run(context, request_id))


@router.post("/v1/retention/run")
def run_retention(request: Request, context: RequestContext, dry_run: bool = False) -> list[dict[str, Any]]:
    """Delete every expired dataset version (or list them, with ``dry_run``); returns the certificates."""
    certificates: list[dict[str, Any]] = _services(request).retention.run(context, dry_run=dry_run)
    return certificates


@router.get("/v1/lineage/models/{name}/versions/{version}")
def model_lineage(
    request: Request, context: RequestContext, name: ModelName, version: VersionNumber
) -> dict[str, Any]:
    graph: dict[str, Any] = _services(request).lineage.model(context, name, version).as_json()
    return graph


@router.get("/v1/lineage/datasets/{name}/versions/{version}")
def dataset_impact(
    request: Request, context: RequestContext, name: DatasetName, version: VersionNumber
) -> dict[str, Any]:
    graph: dict[str, Any] = _services(request).lineage.impact(context, name, version).as_json()
    return graph

"""The registry's records: stages and their allowed moves, row look-ups, the resource a policy sees, and the
read models handed to callers."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.spine.context import Resource
from bastion.store.tables import ModelApproval, ModelRow, ModelStageEvent, ModelVersionRow

REGISTERED, VALIDATED, APPROVED, PRODUCTION = "registered", "validated", "approved", "production"
RETIRED, QUARANTINED = "retired", "quarantined"
STAGES = (REGISTERED, VALIDATED, APPROVED, PRODUCTION, RETIRED, QUARANTINED)
# Every stage change goes through one of these moves (and a service method that checks what the move needs).
MOVES: dict[str, frozenset[str]] = {
    REGISTERED: frozenset({VALIDATED, QUARANTINED, RETIRED}),
    VALIDATED: frozenset({APPROVED, QUARANTINED, RETIRED}),
    APPROVED: frozenset({PRODUCTION, QUARANTINED, RETIRED}),
    PRODUCTION: frozenset({APPROVED, QUARANTINED, RETIRED}),  # back to approved when superseded
    QUARANTINED: frozenset({RETIRED}),
    RETIRED: frozenset(),
}
LOADABLE = frozenset({VALIDATED, APPROVED, PRODUCTION})
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_model_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput("Model names are 1-128 lowercase letters, digits, '.', '_' or '-'.")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME@VERSION`` or ``NAME`` (the version then means: the production one)."""
    name, _, version = ref.partition("@")
    if version and not version.isdigit():
        raise InvalidInput(f"{ref!r} is not NAME@VERSION (a version is a number).")
    return check_model_name(name), int(version) if version else None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    description: str
    classification: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StageChange:
    from_stage: str | None
    to_stage: str
    by: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: str
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
    approvals: tuple[str, ...]
    history: tuple[StageChange, ...]
    created_by: str
    created_at: datetime
    shredded: bool
    archived: bool

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


def model_row(session: Session, name: str) -> ModelRow:
    row = session.get(ModelRow, name)
    if row is None:
        raise NotFound(f"There is no model named {name}.")
    return row


def version_row(session: Session, name: str, version: int | None) -> ModelVersionRow:
    """A version by number, or the model's production version when ``version`` is None."""
    query = select(ModelVersionRow).where(ModelVersionRow.model_name == name)
    if version is None:
        query = query.where(ModelVersionRow.stage == PRODUCTION)
    else:
        query = query.where(ModelVersionRow.version == version)
    row = session.scalars(query).first()
    if row is None:
        raise missing_version(name, version)
    return row


def missing_version(name: str, version: int | None) -> NotFound:
    if version is None:
        return NotFound(
            f"Model {name} has no version in production.",
            remedy=f"Name a version: {name}@VERSION on the command line, "
            f"/v1/models/{name}/versions/VERSION over HTTP.",
        )
    return NotFound(f"Model {name} has no version {version}.")


# A Core statement built once (the request path reads it every second or so: see ``Database.snapshot``).
_MODEL_FACTS = select(ModelRow.classification, ModelRow.created_by).where(ModelRow.name == bindparam("name"))


def resource(session: Session, name: str, version: int | None = None, *, author: bool = False) -> Resource:
    """What policies see: the model with its classification, and as ``owner`` its creator — or, for the
    review actions (``author=True``), the version's author, so the separation-of-duties rule can apply.
    An unknown model is a bare resource: authorization comes before "not found"."""
    author_id = None
    if author:
        with contextlib.suppress(NotFound):
            author_id = version_row(session, name, version).created_by
    return model_resource(session, name, owner=author_id)


def model_resource(reader: Session | Connection, name: str, owner: str | None = None) -> Resource:
    """``resource``, read by an ORM session or a bare connection; ``owner`` instead of the creator."""
    facts = reader.execute(_MODEL_FACTS, {"name": name}).first()
    if facts is None:
        return Resource("model", name)
    classification, creator = facts
    return Resource("model", name, {"classification": classification, "owner": owner or creator})


def move(session: Session, row: ModelVersionRow, to: str, by: str, at: datetime, reason: str = "") -> None:
    if to not in MOVES[row.stage]:
        raise Conflict(f"Version {row.model_name}@{row.version} is {row.stage}; it cannot become {to}.")
    session.add(
        ModelStageEvent(version_id=row.id, from_stage=row.stage, to_stage=to, by=by, at=at, reason=reason)
    )
    row.stage = to


def model_info(row: ModelRow) -> ModelInfo:
    return ModelInfo(row.name, row.description, row.classification, row.created_by, row.created_at)


def version_info(session: Session, row: ModelVersionRow) -> VersionInfo:
    approvals = session.scalars(
        select(ModelApproval.approver_id).where(ModelApproval.version_id == row.id).order_by(ModelApproval.at)
    ).all()
    events = session.scalars(
        select(ModelStageEvent).where(ModelStageEvent.version_id == row.id).order_by(ModelStageEvent.id)
    ).all()
    return VersionInfo(
        id=row.id,
        model=row.model_name,
        version=row.version,
        stage=row.stage,
        origin=row.origin,
        filename=row.filename,
        size=row.size,
        sha256=row.sha256,
        format=row.format,
        scan_verdict=row.scan_verdict,
        scan_report=row.scan_report,
        scan_accepted_by=row.scan_accepted_by,
        signed=row.signature is not None,
        provenance=row.provenance,
        input_schema=row.input_schema,
        evaluation=row.evaluation,
        gate_result=row.gate_result,
        source=row.source,
        vetted_by=row.vetted_by,
        approvals=tuple(approvals),
        history=tuple(StageChange(e.from_stage, e.to_stage, e.by, e.at, e.reason) for e in events),
        created_by=row.created_by,
        created_at=row.created_at,
        shredded=row.shredded_at is not None,
        archived=row.archived,
    )

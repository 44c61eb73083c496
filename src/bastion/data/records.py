"""The data services' records: look-ups, the resource a policy sees, read models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core.errors import InvalidInput, NotFound
from bastion.data.schema import DatasetSchema
from bastion.spine.context import Resource
from bastion.store.tables import DatasetRow, DatasetVersionRow

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput("Dataset names are 1-128 lowercase letters, digits, '.', '_' or '-'.")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME@VERSION`` or ``NAME`` (the latest version)."""
    name, _, version = ref.partition("@")
    if version and not version.isdigit():
        raise InvalidInput(f"{ref!r} is not NAME@VERSION (a version is a number).")
    return check_name(name), int(version) if version else None


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    description: str
    purposes: tuple[str, ...]
    region: str
    retention_days: int | None
    schema: DatasetSchema
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DatasetVersionInfo:
    dataset: str
    version: int
    id: str
    sha256: str
    source_format: str
    source_sha256: str
    rows: int
    size: int
    report: dict[str, Any]
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


def dataset_row(session: Session, name: str) -> DatasetRow:
    row = session.get(DatasetRow, name)
    if row is None:
        raise NotFound(f"There is no dataset named {name}.")
    return row


def version_row(
    session: Session, name: str, version: int | None, *, deleted: bool = False
) -> DatasetVersionRow:
    """A version by number, or the latest live one when ``version`` is None; ``deleted`` admits shredded
    versions too (lineage is asked about them)."""
    query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_name == name)
    if not deleted:
        query = query.where(DatasetVersionRow.shredded_at.is_(None))
    if version is not None:
        query = query.where(DatasetVersionRow.version == version)
    row = session.scalars(query.order_by(DatasetVersionRow.version.desc())).first()
    if row is None:
        raise NotFound(
            f"Dataset {name} has no version {version}." if version else f"Dataset {name} is empty."
        )
    return row


def next_version(session: Session, name: str) -> int:
    """The number a new version of ``name`` gets (the unique index refuses a concurrent twin)."""
    latest = session.scalar(
        select(func.max(DatasetVersionRow.version)).where(DatasetVersionRow.dataset_name == name)
    )
    return (latest or 0) + 1


def resource(session: Session, name: str) -> Resource:
    """What policies see: the dataset with its classification (its most sensitive field's), its region and
    its owner. An unknown dataset is a bare resource: authorization comes before "not found"."""
    row = session.get(DatasetRow, name)
    if row is None:
        return Resource("dataset", name)
    schema = DatasetSchema.model_validate(row.schema)
    return Resource(
        "dataset",
        name,
        {"classification": schema.classification, "region": row.region, "owner": row.created_by},
    )


def dataset_info(row: DatasetRow) -> DatasetInfo:
    return DatasetInfo(
        name=row.name,
        description=row.description,
        purposes=tuple(row.purposes),
        region=row.region,
        retention_days=row.retention_days,
        schema=DatasetSchema.model_validate(row.schema),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def version_info(row: DatasetVersionRow) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        dataset=row.dataset_name,
        version=row.version,
        id=row.id,
        sha256=row.sha256,
        source_format=row.source_format,
        source_sha256=row.source_sha256,
        rows=row.rows,
        size=row.size,
        report=row.report,
        created_by=row.created_by,
        created_at=row.created_at,
    )

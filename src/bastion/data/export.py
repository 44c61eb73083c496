"""Export: a dataset version for one declared purpose, minimised and transformed as its schema says.

The purpose must be declared (``--purpose`` / ``X-Bastion-Purpose``) and be one the dataset serves; fields
needed only for other purposes are dropped; the export transforms and k-anonymity run; CSV cells that a
spreadsheet would run as a formula are neutralised. The export is audited with its purpose before the file
appears.
"""

from __future__ import annotations

import csv
import io
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bastion.core.clock import Clock
from bastion.core.digests import file_digest
from bastion.core.errors import InvalidInput, PermissionDenied
from bastion.core.ids import uuid7
from bastion.data import transforms
from bastion.data.ingest import canonical_jsonl
from bastion.data.kanonymity import anonymise
from bastion.data.pii import PiiEngine
from bastion.data.records import dataset_info, dataset_row, resource, version_row
from bastion.data.registry import DatasetRegistry
from bastion.data.residency import check_transfer
from bastion.data.schema import Transform
from bastion.data.versions import load_rows
from bastion.keys.vault import ObjectVault
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetExport

ExportFormat = Literal["csv", "jsonl", "parquet"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class ExportReport:
    dataset: str
    version: int
    purpose: str
    rows: int
    fields: list[str]
    dropped: list[str]
    k_anonymity: dict[str, Any] | None


class DataExport:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        vault: ObjectVault,
        registry: DatasetRegistry,
        pii: PiiEngine,
        clock: Clock,
        region: str | None = None,
    ) -> None:
        self._clock = clock
        self._region = region  # where this deployment (and so the export file) is
        self._uow, self._database, self._vault, self._registry, self._pii = (
            uow,
            database,
            vault,
            registry,
            pii,
        )

    def workspace(self) -> AbstractContextManager[Path]:
        """An owner-only directory to export into before streaming the file out (removed afterwards)."""
        return self._vault.workspace()

    def export(
        self, context: Context, name: str, version: int | None, fmt: ExportFormat, target: Path
    ) -> ExportReport:
        purpose = context.purpose
        if purpose is None:
            raise InvalidInput(
                "Declare the purpose of this export (--purpose, or the X-Bastion-Purpose header)."
            )
        with self._database.read() as session:
            policy_resource = resource(session, name)
        self._uow.authorize(context, "data.export", policy_resource, details={"version": version})
        with self._database.read() as session:
            info = dataset_info(dataset_row(session, name))
            row = version_row(session, name, version)
            version_id, number = row.id, row.version
        if purpose not in info.purposes:
            reason = f"purpose {purpose} is not one dataset {name} serves"
            self._uow.refuse(context, "data.export", policy_resource, reason, details={"version": number})
            raise PermissionDenied(
                f"Dataset {name} is not for {purpose!r}; it serves {', '.join(info.purposes)}."
            )
        destination = context.destination or self._region
        check_transfer(self._uow, context, policy_resource, info.region, destination, f"export for {purpose}")
        rows = load_rows(self._vault, context, version_id, f"{name}@{number}")
        schema = info.schema
        dropped = [f.name for f in schema.fields if f.purposes and purpose not in f.purposes]
        steps = [Transform(field=f, op="drop") for f in dropped]
        steps += [t for t in schema.transforms if t.on == "export" and t.field not in dropped]
        tools = self._registry.tools(context, name, self._pii)
        rows = transforms.apply(rows, steps, tools)
        k_report = None
        if schema.k_anonymity is not None:
            rows, k_report = anonymise(rows, schema.k_anonymity)
        fields = [f.name for f in schema.fields if f.name not in dropped]
        report = ExportReport(name, number, purpose, len(rows), fields, dropped, k_report)
        details = {
            "version": number,
            "purpose": purpose,
            "rows": len(rows),
            "dropped": dropped,
            "format": fmt,
        }
        if k_report:
            details["k_anonymity"] = k_report
        partial = target.with_name(f".{target.name}.partial")
        try:
            _write(rows, fields, fmt, partial)
            details["sha256"] = file_digest(partial)
            with self._uow.act(context, "data.export", policy_resource, details=details) as work:
                # Audited (durably) before the file appears under its name; its digest is lineage: a dataset
                # ingested from this file, or a model trained on it, traces back to this version.
                work.session.add(
                    DatasetExport(
                        id=f"de-{uuid7()}",
                        dataset_name=name,
                        version=number,
                        sha256=details["sha256"],
                        purpose=purpose,
                        created_by=context.principal.id,
                        created_at=self._clock.now(),
                    )
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return report


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a leading
    apostrophe, so it is shown, not run (OWASP CSV injection). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _write(rows: list[dict[str, Any]], fields: list[str], fmt: ExportFormat, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if fmt == "jsonl":
            handle.write(canonical_jsonl(rows))
        elif fmt == "csv":
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: neutralise(v) for k, v in row.items()} for row in rows)
            handle.write(text.getvalue().encode())
        else:
            import pyarrow as pa  # noqa: PLC0415 - only Parquet exports need it
            import pyarrow.parquet as pq  # noqa: PLC0415

            pq.write_table(pa.Table.from_pylist([{f: row.get(f) for f in fields} for row in rows]), handle)

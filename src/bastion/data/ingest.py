"""Secure ingestion: a new dataset version from an upload, or nothing at all.

The caller is authorized and rate-limited before a byte is read; the bytes stream into an owner-only
workspace, hashed and size-capped; the format comes from the content (``sniff``); archives are read strictly
and must hold one data file; the rows are validated against the dataset's schema; the declared ingest
transforms run (pseudonymise, encrypt, mask, redact, generalise, drop); the result is stored as canonical JSON
Lines, content-addressed by its SHA-256 and encrypted under a key of its own. Any failure leaves a quarantine
record with the report (never the bytes), an audited refusal, and no version.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, NotFound
from bastion.core.ids import uuid7
from bastion.core.ratelimit import TokenBuckets
from bastion.core.staging import Upload, safe_filename
from bastion.data import classify, transforms
from bastion.data.errors import DataRejected, DataTooLarge
from bastion.data.pii import PiiEngine
from bastion.data.readers import Problems, read_rows
from bastion.data.records import (
    DatasetVersionInfo,
    dataset_info,
    dataset_row,
    next_version,
    resource,
    version_info,
)
from bastion.data.registry import DatasetRegistry
from bastion.data.residency import check_transfer
from bastion.data.schema import DatasetSchema
from bastion.data.sniff import sniff
from bastion.keys.vault import ObjectVault
from bastion.scanning.archives import ENCRYPTED, ZipProblem, contents, read_members
from bastion.scanning.report import ScanReport, Severity
from bastion.scanning.streams import Window
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetExport, DatasetQuarantine, DatasetVersionRow, Pseudonym

_SNIFF_WHOLE = 1 << 20  # texts up to this size are also checked for a protocol-0 pickle in full


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A version ready to record: stored encrypted, not yet in the database."""

    version_id: str
    key_name: str
    sha256: str
    fmt: str
    source_sha256: str
    rows: list[dict[str, Any]]
    size: int
    report: dict[str, Any]


class _Rejected(Exception):
    def __init__(self, reason: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.problems = reason, message, problems or []


class DataIngest:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        vault: ObjectVault,
        registry: DatasetRegistry,
        pii: PiiEngine,
        limiter: TokenBuckets,
        max_bytes: int,
        region: str | None = None,
    ) -> None:
        self._uow, self._database, self._clock, self._vault = uow, database, clock, vault
        self._registry, self._pii, self._limiter, self._max_bytes = registry, pii, limiter, max_bytes
        self._region = region  # where this deployment stores data (None: not declared)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @contextmanager
    def receive(self, context: Context, name: str, filename: str) -> Iterator[Upload]:
        filename = safe_filename(filename)
        with self._database.read() as session:
            target = resource(session, name)
            exists = "classification" in target.attributes
        self._uow.authorize(context, "data.ingest", target)
        if not exists:
            raise NotFound(f"There is no dataset named {name}; create it first.")
        # Storing here is moving the data into this deployment's region: before a byte is received.
        check_transfer(self._uow, context, target, target.attributes["region"], self._region, "ingest")
        self._limiter.take(context.principal.id, "data uploads")
        with self._vault.workspace() as work:
            upload = Upload(name, work / filename, self._max_bytes, DataTooLarge)
            try:
                yield upload
            finally:
                upload.finish()

    def accept(self, context: Context, upload: Upload) -> DatasetVersionInfo:
        name, sha256 = upload.owner, upload.finish()
        with self._database.read() as session:
            target = resource(session, name)
            info = dataset_info(dataset_row(session, name))
        try:
            fmt, path = self._source(upload.path)
            rows = read_rows(path, fmt, info.schema)
        except Problems as problems:
            reason, message = "data.schema_violation", "rows do not fit the schema"
            self._reject(context, target, upload, sha256, reason, message, problems.problems)
        except _Rejected as rejected:
            self._reject(
                context, target, upload, sha256, rejected.reason, rejected.message, rejected.problems
            )
        return self._store(context, target, info.name, info.schema, upload, sha256, fmt, rows)

    def _source(self, path: Path, depth: int = 0) -> tuple[str, Path]:
        """The upload's format and the file to read (the one data file of an archive)."""
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4096)
            handle.seek(max(0, size - 8))
            tail = handle.read(8)
            whole = None
            if size <= _SNIFF_WHOLE:
                handle.seek(0)
                whole = handle.read()
        verdict = sniff(head, tail, size, whole)
        if verdict.format == "refused":
            raise _Rejected(verdict.reason, verdict.detail)
        if verdict.format != "zip":
            return verdict.format, path
        if depth > 0:
            raise _Rejected("data.archive_nested", "an archive inside an archive")
        return self._source(self._extract(path), depth + 1)

    def _extract(self, path: Path) -> Path:
        failure: _Rejected | None = None
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            # Every view of the map lives in the call's frame; a raised error would keep that frame (and the
            # views) alive through its traceback, so the map could not close: the error is re-made outside.
            try:
                return self._extract_from(Window(mapped), path)
            except _Rejected as rejected:
                failure = _Rejected(rejected.reason, rejected.message, rejected.problems)
        raise failure

    def _extract_from(self, window: Window, path: Path) -> Path:
        report = ScanReport(path.name)
        try:
            members = read_members(window, report, path.name)
            high = (Severity.CRITICAL, Severity.HIGH)
            unsafe = [f"{f.code}: {f.message}" for f in report.findings if f.severity in high]
            if unsafe:
                raise _Rejected("data.archive_unsafe", "the archive is unsafe", unsafe)
            files = [m for m in members if not m.name.endswith("/")]
            if len(files) != 1:
                raise _Rejected(
                    "data.archive_contents", f"an archive must hold exactly one data file, not {len(files)}"
                )
            member = files[0]
            if member.flags & ENCRYPTED:
                raise _Rejected("data.archive_encrypted", "encrypted archive entries cannot be checked")
            body = contents(window, member, self._max_bytes)
        except ZipProblem as problem:
            raise _Rejected("data.archive_unsafe", f"the archive cannot be read safely: {problem}") from None
        target = path.parent / ("member-" + safe_filename(member.name.rsplit("/", 1)[-1] or "data"))
        with target.open("wb") as out:
            out.write(body.view())
        return target

    def _reject(
        self,
        context: Context,
        target: Resource,
        upload: Upload,
        sha256: str,
        reason: str,
        message: str,
        problems: list[str],
    ) -> None:
        quarantine_id = f"dq-{uuid7()}"
        report = {"reason": reason, "message": message, "problems": problems[:50], "size": upload.size}
        with self._database.transaction() as session:
            session.add(
                DatasetQuarantine(
                    id=quarantine_id,
                    dataset_name=upload.owner,
                    filename=upload.path.name,
                    sha256=sha256,
                    size=upload.size,
                    reason=reason,
                    report=report,
                    created_by=context.principal.id,
                    created_at=self._clock.now(),
                )
            )
        details = {"sha256": sha256, "size": upload.size, "quarantine": quarantine_id}
        self._uow.refuse(context, "data.ingest", target, f"rejected: {reason}", details=details)
        raise DataRejected(
            f"{upload.path.name} was rejected ({reason}): {message}; nothing was stored.",
            reason=reason,
            problems=problems[:50],
            quarantine=quarantine_id,
        )

    def _store(
        self,
        context: Context,
        target: Resource,
        name: str,
        schema: DatasetSchema,
        upload: Upload,
        source_sha256: str,
        fmt: str,
        rows: list[dict[str, Any]],
    ) -> DatasetVersionInfo:
        tools = self._registry.tools(context, name, self._pii)
        suggestions = classify.suggest(rows, schema, self._pii)
        stored = transforms.apply(rows, [t for t in schema.transforms if t.on == "ingest"], tools)
        canonical = canonical_jsonl(stored)
        sha256 = hashlib.sha256(canonical).hexdigest()
        existing = self._existing(name, sha256)
        if existing is not None:
            return existing
        version_id = f"dv-{uuid7()}"
        plain = upload.path.parent / "canonical.jsonl"
        plain.write_bytes(canonical)
        key_name = self._vault.store(context, version_id, plain)
        report = {
            "source": {
                "format": fmt,
                "sha256": source_sha256,
                "size": upload.size,
                "filename": upload.path.name,
            },
            "schema": schema.model_dump(mode="json", exclude_none=True),
            "transforms": [
                t.model_dump(mode="json", exclude_none=True) for t in schema.transforms if t.on == "ingest"
            ],
            "classification_suggestions": suggestions,
        }
        origin = self._exported_from(source_sha256)
        if origin is not None:
            report["derived_from"] = origin
        prepared = _Prepared(version_id, key_name, sha256, fmt, source_sha256, stored, len(canonical), report)
        try:
            return self._record(context, target, name, prepared, tools)
        except BaseException:
            self._vault.shred(context, version_id, key_name)
            raise

    def _record(
        self, context: Context, target: Resource, name: str, new: _Prepared, tools: transforms.Tools
    ) -> DatasetVersionInfo:
        # Encrypted before the transaction: the cipher's first use is itself an audited key-manager action.
        cipher = self._registry.cipher(context, name) if tools.pseudonyms else None
        sealed = {
            pair: cipher.encrypt(value, context=f"{name}.{pair[0]}#pseudonym")
            for pair, value in tools.pseudonyms.items()
        } if cipher else {}  # fmt: skip
        details: dict[str, Any] = {
            "sha256": new.sha256,
            "rows": len(new.rows),
            "source_sha256": new.source_sha256,
        }
        try:
            with self._uow.act(context, "data.ingest", target, details=details) as work:
                row = DatasetVersionRow(
                    id=new.version_id,
                    dataset_name=name,
                    version=next_version(work.session, name),
                    sha256=new.sha256,
                    source_format=new.fmt,
                    source_sha256=new.source_sha256,
                    rows=len(new.rows),
                    size=new.size,
                    key_name=new.key_name,
                    report=new.report,
                    created_by=context.principal.id,
                    created_at=self._clock.now(),
                )
                work.session.add(row)
                self._add_pseudonyms(work.session, name, sealed)
                work.details["version"] = row.version
                work.session.flush()
                return version_info(row)
        except IntegrityError as error:
            raise Conflict("Another version was stored at the same moment; upload again.") from error

    @staticmethod
    def _add_pseudonyms(session: Session, name: str, sealed: dict[tuple[str, str], str]) -> None:
        for (field, token), encrypted in sealed.items():
            if session.get(Pseudonym, (name, field, token)) is None:
                session.add(Pseudonym(dataset_name=name, field=field, token=token, value_encrypted=encrypted))

    def _exported_from(self, source_sha256: str) -> dict[str, Any] | None:
        """Lineage: the upload is a file Bastion exported (same SHA-256), so this version derives from the
        exported one."""
        with self._database.read() as session:
            export = session.scalars(
                select(DatasetExport).where(DatasetExport.sha256 == source_sha256)
            ).first()
            if export is None:
                return None
            parent = session.scalars(
                select(DatasetVersionRow).where(
                    DatasetVersionRow.dataset_name == export.dataset_name,
                    DatasetVersionRow.version == export.version,
                )
            ).first()
            if parent is None:
                return None
            return {
                "version_id": parent.id,
                "dataset": parent.dataset_name,
                "version": parent.version,
                "via": f"export for {export.purpose}",
            }

    def _existing(self, name: str, sha256: str) -> DatasetVersionInfo | None:
        """Content addressing: the same rows again are the same version, not a new one."""
        with self._database.read() as session:
            row = session.scalars(
                select(DatasetVersionRow).where(
                    DatasetVersionRow.dataset_name == name,
                    DatasetVersionRow.sha256 == sha256,
                    DatasetVersionRow.shredded_at.is_(None),
                )
            ).first()
            return version_info(row) if row is not None else None


def canonical_jsonl(rows: list[dict[str, Any]]) -> bytes:
    """One JSON object per line, fields in schema order, compact: the same rows always give the same bytes."""
    return b"".join(
        json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_value).encode() + b"\n"
        for row in rows
    )


def _json_value(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def read_canonical(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]

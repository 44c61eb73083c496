"""Data-subject rights (GDPR articles 15-17): access, erasure and rectification requests for a subject
identifier, across every retained dataset version, in one command.

A request is registered with a deadline (one month); the identifier is kept sealed (field-encrypted) only
while the request is open — afterwards a keyed digest is all that remains. Running it finds the subject's
records in every live version of every dataset whose schema marks a ``subject`` field, by the field's plain
value, its pseudonym token, or its field-encrypted value. Then:

- access: the records are returned to the caller (not stored; the audit event counts them);
- erasure: each affected version is rewritten without the subject's rows as a new version (its report names
  the version it derives from and the request), the old version is crypto-shredded, the subject's pseudonym
  entries are deleted, and every model version trained on an affected version (through lineage) is flagged
  for retraining review;
- rectification: the same, with the subject's rows corrected instead of removed.

Every step is authorized (``data.subjects``) and audited, without the identifier in any audit event. Overdue
open requests raise a critical audit alert each time retention runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.core.ids import uuid7
from bastion.data import transforms
from bastion.data.ingest import canonical_jsonl
from bastion.data.pii import PiiEngine
from bastion.data.pseudonyms import Pseudonymizer
from bastion.data.records import dataset_info, next_version
from bastion.data.records import resource as dataset_resource
from bastion.data.registry import DatasetRegistry
from bastion.data.schema import DatasetSchema
from bastion.data.versions import load_rows
from bastion.governance.lineage import Lineage, dataset_key, model_key
from bastion.keys.errors import KeyNotFound
from bastion.keys.fields import FieldCipher
from bastion.keys.manager import SYSTEM_OWNED_PREFIX, KeyManager
from bastion.keys.model import KeyPurpose
from bastion.keys.vault import ObjectVault
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetRow, DatasetVersionRow, ModelReview, Pseudonym, SubjectRequest

ACTION = "data.subjects"
REQUESTS_KEY = f"{SYSTEM_OWNED_PREFIX}subject-requests"
DEADLINE = timedelta(days=30)  # GDPR article 12(3): one month
ALL_DATASETS = Resource("dataset", "*")
Kind = Literal["access", "erasure", "rectification"]
KINDS = ("access", "erasure", "rectification")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    id: str
    kind: str
    status: str
    due_at: datetime
    overdue: bool
    created_by: str
    created_at: datetime
    completed_at: datetime | None
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    request: RequestInfo
    records: dict[str, list[dict[str, Any]]]  # access: the subject's rows per dataset version


class SubjectRights:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        keys: KeyManager,
        vault: ObjectVault,
        registry: DatasetRegistry,
        lineage: Lineage,
        pii: PiiEngine,
        system: Context,
    ) -> None:
        self._uow, self._database, self._clock, self._keys = uow, database, clock, keys
        self._vault, self._registry, self._lineage, self._pii = vault, registry, lineage, pii
        self._system = system

    # -- requests -----------------------------------------------------------------------------------
    def register(
        self, context: Context, kind: str, subject: str, changes: dict[str, Any] | None = None
    ) -> RequestInfo:
        if kind not in KINDS:
            raise InvalidInput(f"A request is one of {', '.join(KINDS)}.")
        if not subject.strip() or len(subject) > 512:
            raise InvalidInput("The subject identifier must be 1-512 characters.")
        if (kind == "rectification") != bool(changes):
            raise InvalidInput("A rectification, and only a rectification, names the corrected fields.")
        self._uow.authorize(context, ACTION, ALL_DATASETS)
        cipher, digest = self._cipher(context), self._digest(context, subject)
        sealed = cipher.encrypt(subject, context="subject-request")
        sealed_changes = cipher.encrypt(json.dumps(changes), context="subject-changes") if changes else None
        now = self._clock.now()
        request_id = f"dsr-{uuid7()}"
        details = {"request": request_id, "kind": kind, "due_at": (now + DEADLINE).isoformat()}
        with self._uow.act(context, ACTION, ALL_DATASETS, details=details) as work:
            row = SubjectRequest(
                id=request_id,
                kind=kind,
                subject_sealed=sealed,
                subject_digest=digest,
                changes=sealed_changes,
                status="open",
                due_at=now + DEADLINE,
                created_by=context.principal.id,
                created_at=now,
            )
            work.session.add(row)
            work.session.flush()
            return self._info(row)

    def requests(self, context: Context, *, overdue_only: bool = False) -> list[RequestInfo]:
        with self._uow.read(context, ACTION, ALL_DATASETS, details={"view": "requests"}) as work:
            rows = work.session.scalars(select(SubjectRequest).order_by(SubjectRequest.created_at)).all()
            infos = [self._info(row) for row in rows]
        return [info for info in infos if info.overdue or not overdue_only]

    def alert_overdue(self, context: Context) -> int:
        """A critical audit alert for each open request past its deadline (run with retention)."""
        overdue = [info for info in self.requests(context) if info.overdue]
        for info in overdue:
            details = {"request": info.id, "kind": info.kind, "due_at": info.due_at.isoformat()}
            self._uow.alert(context, ACTION, ALL_DATASETS, "data-subject request overdue", details)
        return len(overdue)

    # -- fulfilment ---------------------------------------------------------------------------------
    def run(self, context: Context, request_id: str) -> Outcome:
        self._uow.authorize(context, ACTION, ALL_DATASETS, details={"request": request_id})
        with self._database.read() as session:
            row = session.get(SubjectRequest, request_id)
            if row is None:
                raise NotFound(f"There is no data-subject request {request_id}.")
            if row.status != "open" or row.subject_sealed is None:
                raise Conflict(f"Request {request_id} is {row.status}.")
            kind, sealed, sealed_changes = row.kind, row.subject_sealed, row.changes
        cipher = self._cipher(context)
        subject = cipher.decrypt(sealed, context="subject-request")
        changes = (
            json.loads(cipher.decrypt(sealed_changes, context="subject-changes")) if sealed_changes else {}
        )
        records: dict[str, list[dict[str, Any]]] = {}
        replaced: list[str] = []
        flagged: set[str] = set()
        datasets = self._datasets()
        if kind == "rectification":
            known = {f.name for _, schema in datasets for f in schema.fields}
            if set(changes) - known:
                unknown = sorted(set(changes) - known)
                raise InvalidInput(f"No dataset has the field(s) {unknown}; nothing was changed.")
        foreign = self._tokens(context, datasets, subject)
        for name, schema in datasets:
            match = self._matcher(context, name, schema, subject, foreign)
            fields = {f.name for f in schema.fields}
            if match is None or (kind == "rectification" and not set(changes) & fields):
                continue
            for version in self._live_versions(name):
                ref = dataset_key(name, version.version)
                rows = load_rows(self._vault, context, version.id, ref)
                hits = [i for i, r in enumerate(rows) if match(r)]
                if not hits:
                    continue
                if kind == "access":
                    records[ref] = [rows[i] for i in hits]
                    continue
                if kind == "erasure":
                    kept = [r for i, r in enumerate(rows) if i not in set(hits)]
                else:
                    kept = self._rectified(context, name, schema, rows, set(hits), changes)
                flagged |= self._replace(context, version, kept, kind, request_id, len(hits))
                replaced.append(ref)
            if kind == "erasure":
                self._forget_pseudonyms(context, name, schema, subject)
        result = {
            "datasets_searched": len(datasets),
            "records": sum(len(v) for v in records.values()) if kind == "access" else None,
            "versions_replaced": replaced,
            "models_flagged": sorted(flagged),
        }
        return Outcome(self._complete(context, request_id, result), records)

    # -- the pieces ---------------------------------------------------------------------------------
    def _matcher(
        self,
        context: Context,
        name: str,
        schema: DatasetSchema,
        subject: str,
        foreign: dict[str, set[str]],
    ) -> Any:
        """A row test for the subject, or None when the dataset marks no subject field. A plain subject field
        also matches the subject's pseudonym tokens from other datasets (``foreign``: per field name) — the
        values a dataset ingested from another's export carries."""
        fields = [f.name for f in schema.fields if f.subject]
        if not fields:
            return None
        ingest_ops = {t.field: t.op for t in schema.transforms if t.on == "ingest"}
        expected: dict[str, set[str]] = {}
        encrypted: list[str] = []
        for field in fields:
            op = ingest_ops.get(field)
            if op == "pseudonymise":
                material = self._registry.key_material(context, name)
                expected[field] = {Pseudonymizer(material, name).token(field, subject)}
            elif op == "encrypt":
                encrypted.append(field)
            elif op is None:
                expected[field] = {subject, *foreign.get(field, ())}
        cipher = self._registry.cipher(context, name) if encrypted else None

        def match(row: dict[str, Any]) -> bool:
            if any(str(row.get(f)) in values for f, values in expected.items()):
                return True
            return cipher is not None and any(
                row.get(f) is not None and cipher.decrypt(str(row[f]), context=f"{name}.{f}") == subject
                for f in encrypted
            )

        return match

    def _tokens(
        self, context: Context, datasets: list[tuple[str, DatasetSchema]], subject: str
    ) -> dict[str, set[str]]:
        """The subject's token in every dataset that pseudonymises a subject field, by field name."""
        tokens: dict[str, set[str]] = {}
        for name, schema in datasets:
            subject_fields = {f.name for f in schema.fields if f.subject}
            pseudonymised = [
                t.field for t in schema.transforms if t.op == "pseudonymise" and t.field in subject_fields
            ]
            if pseudonymised:
                pseudonymizer = Pseudonymizer(self._registry.key_material(context, name), name)
                for field in pseudonymised:
                    tokens.setdefault(field, set()).add(pseudonymizer.token(field, subject))
        return tokens

    def _rectified(
        self,
        context: Context,
        name: str,
        schema: DatasetSchema,
        rows: list[dict[str, Any]],
        hits: set[int],
        changes: dict[str, Any],
    ) -> list[dict[str, Any]]:
        known = {f.name for f in schema.fields}
        changes = {field: value for field, value in changes.items() if field in known}
        corrected = [{**rows[i], **changes} for i in sorted(hits)]
        steps = [t for t in schema.transforms if t.on == "ingest" and t.field in changes]
        tools = self._registry.tools(context, name, self._pii)
        corrected = transforms.apply(corrected, steps, tools)
        fixed = dict(zip(sorted(hits), corrected, strict=True))
        return [fixed.get(i, row) for i, row in enumerate(rows)]

    def _replace(
        self,
        context: Context,
        old: DatasetVersionRow,
        rows: list[dict[str, Any]],
        kind: str,
        request_id: str,
        affected: int,
    ) -> set[str]:
        """Store ``rows`` as the next version, shred ``old``, flag the models trained on it."""
        canonical = canonical_jsonl(rows)
        version_id = f"dv-{uuid7()}"
        with self._vault.workspace() as work:
            plain = Path(work) / "canonical.jsonl"
            plain.write_bytes(canonical)
            key_name = self._vault.store(context, version_id, plain)
        report = {
            **{k: v for k, v in (old.report or {}).items() if k != "derived_from"},
            "derived_from": {
                "version_id": old.id, "dataset": old.dataset_name, "version": old.version, "via": kind,
            },
            "request": request_id,
        }  # fmt: skip
        target = self._registry_resource(old.dataset_name)
        details = {
            "request": request_id,
            "kind": kind,
            "from_version": old.version,
            "rows_affected": affected,
        }
        try:
            with self._uow.act(context, "data.ingest", target, details=details) as work:
                new = DatasetVersionRow(
                    id=version_id,
                    dataset_name=old.dataset_name,
                    version=next_version(work.session, old.dataset_name),
                    sha256=hashlib.sha256(canonical).hexdigest(),
                    source_format=old.source_format,
                    source_sha256=old.source_sha256,
                    rows=len(rows),
                    size=len(canonical),
                    key_name=key_name,
                    report=report,
                    created_by=context.principal.id,
                    created_at=old.created_at,  # the data is as old as it was: retention still applies
                )
                work.session.add(new)
                work.details["to_version"] = new.version
        except BaseException as error:
            self._vault.shred(context, version_id, key_name)
            if isinstance(error, IntegrityError):
                raise Conflict(
                    "Another version was stored at the same moment; run the request again."
                ) from error
            raise
        flagged: set[str] = set()
        with self._database.read() as session:
            downstream = self._lineage.downstream(session, old).models
            trained = [(m.id, model_key(m.model_name, m.version)) for m, _ in downstream]
        reason = f"training data changed by {kind} request {request_id} ({old.dataset_name}@{old.version})"
        if old.key_name is not None:
            self._vault.shred(context, old.id, old.key_name)
        details = {"request": request_id, "version": old.version, "key_destroyed": old.key_name}
        with self._uow.act(context, "data.retention", target, details=details) as work:
            row = work.session.get(DatasetVersionRow, old.id)
            if row is not None:
                row.shredded_at, row.key_name = self._clock.now(), None
            for version_id, ref in trained:
                work.session.add(
                    ModelReview(
                        id=f"mr-{uuid7()}",
                        version_id=version_id,
                        reason=reason[:500],
                        source=request_id,
                        created_at=self._clock.now(),
                    )
                )
                flagged.add(ref)
            work.details["models_flagged"] = sorted(flagged)
        return flagged

    def _forget_pseudonyms(self, context: Context, name: str, schema: DatasetSchema, subject: str) -> None:
        """The subject's pseudonym entries: the one place an original value is kept for re-identification."""
        fields = [t.field for t in schema.transforms if t.op == "pseudonymise"]
        if not fields:
            return
        # A token is the keyed HMAC of its value: the subject's entries are found by token, none decrypted.
        pseudonymizer = Pseudonymizer(self._registry.key_material(context, name), name)
        tokens = {(field, pseudonymizer.token(field, subject)) for field in fields}
        with self._database.read() as session:
            entries = session.scalars(select(Pseudonym).where(Pseudonym.dataset_name == name)).all()
            doomed = [(e.field, e.token) for e in entries if (e.field, e.token) in tokens]
        if not doomed:
            return
        details = {"pseudonyms_deleted": len(doomed)}
        with self._uow.act(context, ACTION, self._registry_resource(name), details=details) as work:
            for field, token in doomed:
                work.session.execute(
                    delete(Pseudonym).where(
                        Pseudonym.dataset_name == name, Pseudonym.field == field, Pseudonym.token == token
                    )
                )

    def _complete(self, context: Context, request_id: str, result: dict[str, Any]) -> RequestInfo:
        details = {"request": request_id, **result}
        with self._uow.act(context, ACTION, ALL_DATASETS, details=details) as work:
            row = work.session.get(SubjectRequest, request_id)
            if row is None:
                raise NotFound(f"There is no data-subject request {request_id}.")
            row.status, row.completed_at, row.result = "completed", self._clock.now(), result
            row.subject_sealed, row.changes = None, None  # the identifier is forgotten with the request
            work.session.flush()
            return self._info(row)

    def _datasets(self) -> list[tuple[str, DatasetSchema]]:
        with self._database.read() as session:
            rows = session.scalars(select(DatasetRow).order_by(DatasetRow.name))
            return [(row.name, dataset_info(row).schema) for row in rows]

    def _live_versions(self, name: str) -> list[DatasetVersionRow]:
        """Loaded and detached (read only): the rows outlive the read transaction."""
        with self._database.read() as session:
            rows = list(
                session.scalars(
                    select(DatasetVersionRow)
                    .where(DatasetVersionRow.dataset_name == name, DatasetVersionRow.shredded_at.is_(None))
                    .order_by(DatasetVersionRow.version)
                )
            )
            session.expunge_all()
            return rows

    def _registry_resource(self, name: str) -> Resource:
        with self._database.read() as session:
            return dataset_resource(session, name)

    def _cipher(self, context: Context) -> FieldCipher:
        system = replace(self._system, request_id=context.request_id)
        try:
            self._keys.describe(system, REQUESTS_KEY)
        except KeyNotFound:
            self._keys.create(system, REQUESTS_KEY, KeyPurpose.ENCRYPT)
        return FieldCipher(self._keys, system, REQUESTS_KEY)

    def _digest(self, context: Context, subject: str) -> str:
        system = replace(self._system, request_id=context.request_id)
        self._cipher(context)  # the key exists
        _, material = self._keys.field_keys(system, REQUESTS_KEY)
        return hmac.new(material, b"subject|" + subject.encode(), hashlib.sha256).hexdigest()

    def _info(self, row: SubjectRequest) -> RequestInfo:
        overdue = row.status == "open" and row.due_at < self._clock.now()
        return RequestInfo(
            row.id, row.kind, row.status, row.due_at, overdue, row.created_by, row.created_at,
            row.completed_at, row.result,
        )  # fmt: skip

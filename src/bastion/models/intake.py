"""Intake: a new version's bytes arrive as a stream, are hashed and size-capped on the fly into an owner-only
workspace, scanned without being loaded, and only then — if clean — stored encrypted and signed.

An unsafe artifact leaves a *quarantined* version record (with its scan report, so the finding is on file)
and no bytes. An artifact the scanner cannot judge is accepted only if a policy permits
``models.accept-unscannable`` on that model; otherwise it is quarantined the same way. A third-party import
also names the digest it must have (pinned), its source and its licence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from bastion.core.ids import uuid7
from bastion.core.staging import Upload, safe_filename
from bastion.keys.manager import KeyManager
from bastion.keys.vault import ObjectVault
from bastion.models.errors import ArtifactRejected, ArtifactTooLarge, ArtifactUnscannable
from bastion.models.provenance import parse as parse_provenance
from bastion.models.records import (
    QUARANTINED,
    REGISTERED,
    VALIDATED,
    VersionInfo,
    model_row,
    move,
    resource,
    version_info,
)
from bastion.models.registry import ModelRegistry
from bastion.models.signing import build_manifest, sign_statement, statement
from bastion.scanning.report import ScanReport, Verdict
from bastion.scanning.scanner import scan_path
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import ModelRow, ModelStageEvent, ModelVersionRow

_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class ThirdParty:
    """Where an imported model comes from: the digest it must have, its source and its licence."""

    sha256: str
    source_url: str
    licence: str

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or not set(self.sha256) <= _HEX64:
            raise InvalidInput("A pinned digest is 64 lowercase hex characters (SHA-256).")
        if not self.source_url.strip() or len(self.source_url) > 1000:
            raise InvalidInput("A third-party model needs its source (1-1000 characters).")
        if not self.licence.strip() or len(self.licence) > 200:
            raise InvalidInput("A third-party model needs its licence (1-200 characters).")


class ModelIntake:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        keys: KeyManager,
        vault: ObjectVault,
        registry: ModelRegistry,
        system: Context,
        signing_key: str,
        max_bytes: int,
    ) -> None:
        self._uow, self._database, self._clock, self._keys = uow, database, clock, keys
        self._vault, self._registry, self._system = vault, registry, system
        self._signing_key, self._max_bytes = signing_key, max_bytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @contextmanager
    def receive(
        self, context: Context, name: str, filename: str, *, third_party: ThirdParty | None = None
    ) -> Iterator[Upload]:
        """Authorize first (a refused caller sends no bytes anywhere), then give the caller an ``Upload`` to
        write into. Everything written is removed when the block ends, accepted or not."""
        filename = safe_filename(filename)
        action = "models.import" if third_party else "models.push"
        with self._database.read() as session:
            target = resource(session, name)
            exists = session.get(ModelRow, name) is not None
        self._uow.authorize(context, action, target)
        if not exists:
            raise NotFound(f"There is no model named {name}; create it first.")
        with self._vault.workspace() as work:
            upload = Upload(name, work / filename, self._max_bytes, ArtifactTooLarge)
            try:
                yield upload
            finally:
                upload.finish()

    def accept(
        self,
        context: Context,
        upload: Upload,
        *,
        third_party: ThirdParty | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> VersionInfo:
        name, path = upload.owner, upload.path
        sha256 = upload.finish()
        if provenance is not None:
            parse_provenance(provenance)  # a bad document is refused before anything is stored
        action = "models.import" if third_party else "models.push"
        with self._database.read() as session:
            target = resource(session, name)
        if upload.size == 0:
            raise InvalidInput("The artifact is empty.")
        if third_party and sha256 != third_party.sha256:
            details = {"expected": third_party.sha256, "actual": sha256}
            self._uow.refuse(context, action, target, "pinned digest mismatch", details=details)
            raise InvalidInput(
                f"The artifact's SHA-256 is {sha256}, not the pinned {third_party.sha256}; "
                "nothing was stored."
            )
        report = scan_path(path)
        report.path = path.name  # never the workspace path
        verdict = report.verdict
        accepted_by = None
        if verdict is Verdict.UNSCANNABLE:
            try:
                self._uow.authorize(context, "models.accept-unscannable", target, details={"sha256": sha256})
                accepted_by = "policy"
            except PermissionDenied:
                accepted_by = None
        if verdict is Verdict.UNSAFE or (verdict is Verdict.UNSCANNABLE and accepted_by is None):
            info = self._record(context, action, target, upload, sha256, report, None, third_party)
            summary = "; ".join(f"{f.code} at {f.location}" for f in report.findings[:5])
            if verdict is Verdict.UNSAFE:
                raise ArtifactRejected(
                    f"{info.ref} failed its scan and is quarantined: {summary}.", version=info.version,
                    scan=report.as_json(),
                )  # fmt: skip
            raise ArtifactUnscannable(
                f"{info.ref} could not be scanned ({report.format}) and is quarantined: {summary}.",
                version=info.version,
                scan=report.as_json(),
            )
        version_id = f"mv-{uuid7()}"
        key_name = self._vault.store(context, version_id, path)
        try:
            system = replace(self._system, request_id=context.request_id)
            self._registry.ensure_signing_key(system)
            signed = sign_statement(self._keys, system, self._signing_key, statement(build_manifest(path)))
            info = self._record(
                context, action, target, upload, sha256, report, signed, third_party,
                version_id=version_id, key_name=key_name, accepted_by=accepted_by,
            )  # fmt: skip
        except BaseException:
            self._vault.shred(context, version_id, key_name)
            raise
        if provenance is not None:
            info = self._registry.record_provenance(context, name, info.version, provenance)
        return info

    def _record(
        self,
        context: Context,
        action: str,
        target: Resource,
        upload: Upload,
        sha256: str,
        report: ScanReport,
        signed: tuple[dict[str, Any], int] | None,
        third_party: ThirdParty | None,
        *,
        version_id: str | None = None,
        key_name: str | None = None,
        accepted_by: str | None = None,
    ) -> VersionInfo:
        verdict = report.verdict.value
        details: dict[str, Any] = {"sha256": sha256, "size": upload.size, "verdict": verdict}
        if third_party:
            details.update(source=third_party.source_url, licence=third_party.licence)
        try:
            with self._uow.act(context, action, target, details=details) as work:
                model_row(work.session, upload.owner)
                latest = work.session.scalar(
                    select(func.max(ModelVersionRow.version)).where(
                        ModelVersionRow.model_name == upload.owner
                    )
                )
                now, by = self._clock.now(), context.principal.id
                row = ModelVersionRow(
                    id=version_id or f"mv-{uuid7()}",
                    model_name=upload.owner,
                    version=(latest or 0) + 1,
                    stage=REGISTERED,
                    origin="third-party" if third_party else "internal",
                    filename=upload.path.name,
                    size=upload.size,
                    sha256=sha256,
                    format=report.format,
                    scan_verdict=verdict,
                    scan_report=report.as_json(),
                    scan_accepted_by=accepted_by,
                    key_name=key_name,
                    signature=signed[0] if signed else None,
                    signing_key_version=signed[1] if signed else None,
                    source={"url": third_party.source_url, "licence": third_party.licence}
                    if third_party
                    else None,
                    created_by=by,
                    created_at=now,
                    archived=False,
                )
                work.session.add(row)
                work.session.flush()
                work.session.add(
                    ModelStageEvent(
                        version_id=row.id, from_stage=None, to_stage=REGISTERED, by=by, at=now, reason=action
                    )
                )
                if signed is None:
                    move(work.session, row, QUARANTINED, by, now, f"scan verdict: {verdict}")
                else:
                    move(work.session, row, VALIDATED, by, now, f"scan {verdict}; stored encrypted; signed")
                work.details["version"] = row.version
                work.session.flush()
                return version_info(work.session, row)
        except IntegrityError as error:  # two uploads took the same number at once
            raise Conflict("Another version was registered at the same moment; push again.") from error

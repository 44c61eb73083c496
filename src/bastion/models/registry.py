"""The model registry: models, their versions and every stage change — each through a method that asks the
policy engine and writes the audit log in the same transaction as the change.

    registered -> validated -> approved -> production -> retired      (and quarantined, from any live stage)

A version becomes *validated* at intake (scan clean, stored encrypted, signed; see ``intake``); *approved*
only when its gate passes (``gates``); *production* from approved (the previous production version goes back
to approved); *retired* for good — its key is destroyed (crypto-shredding), after an optional archive copy.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.keys.errors import KeyNotFound
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyAlgorithm, KeyPurpose
from bastion.keys.vault import ObjectVault
from bastion.models import gates, provenance
from bastion.models.errors import GateFailed
from bastion.models.input_schema import check_row_schema, schema_digest
from bastion.models.loader import ModelLoader
from bastion.models.records import (
    APPROVED,
    PRODUCTION,
    QUARANTINED,
    REGISTERED,
    RETIRED,
    VALIDATED,
    ModelInfo,
    VersionInfo,
    check_model_name,
    model_info,
    model_row,
    move,
    resource,
    version_info,
    version_row,
)
from bastion.models.signing import sign_statement
from bastion.policy.catalog import Classification
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import ModelApproval, ModelGate, ModelRow, ModelVersionRow

GLOBAL_GATE = "*"


class ModelRegistry:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        keys: KeyManager,
        vault: ObjectVault,
        loader: ModelLoader,
        system: Context,
        signing_key: str,
    ) -> None:
        self._uow, self._database, self._clock, self._keys = uow, database, clock, keys
        self._vault, self._loader, self._system, self._signing_key = vault, loader, system, signing_key

    # -- models ------------------------------------------------------------------------------------
    def create(
        self, context: Context, name: str, *, description: str = "", classification: str = "internal"
    ) -> ModelInfo:
        check_model_name(name)
        if classification.upper() not in Classification.__members__:
            raise InvalidInput(f"Unknown classification {classification!r}.")
        if len(description) > 2000:
            raise InvalidInput("A description is at most 2000 characters.")
        target = Resource("model", name, {"classification": classification})
        with self._uow.act(context, "models.create", target, details={"classification": classification}) as w:
            if w.session.get(ModelRow, name) is not None:
                raise Conflict(f"A model named {name} already exists.")
            row = ModelRow(
                name=name,
                description=description,
                classification=classification,
                created_by=context.principal.id,
                created_at=self._clock.now(),
            )
            w.session.add(row)
            w.session.flush()
            return model_info(row)

    def list_models(self, context: Context) -> list[ModelInfo]:
        with self._uow.read(context, "models.read", Resource("model", "*")) as work:
            return [model_info(r) for r in work.session.scalars(select(ModelRow).order_by(ModelRow.name))]

    def versions(self, context: Context, name: str) -> list[VersionInfo]:
        with self._uow.read(context, "models.read", self._resource(name)) as work:
            model_row(work.session, name)
            rows = work.session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_name == name)
                .order_by(ModelVersionRow.version)
            ).all()
            return [version_info(work.session, row) for row in rows]

    def version(self, context: Context, name: str, version: int | None) -> VersionInfo:
        with self._uow.read(context, "models.read", self._resource(name), details={"version": version}) as w:
            return version_info(w.session, version_row(w.session, name, version))

    def signature(self, context: Context, name: str, version: int) -> bytes:
        """The version's OMS signature (a Sigstore bundle, JSON)."""
        with self._uow.read(context, "models.read", self._resource(name), details={"version": version}) as w:
            row = version_row(w.session, name, version)
            if row.signature is None:
                raise NotFound(f"{name}@{version} has no signature (it was never accepted).")
            return json.dumps(row.signature, indent=2).encode() + b"\n"

    def public_key(self, context: Context) -> bytes:
        """The registry's signature key (PEM), for ``model_signing verify key`` on downloaded models."""
        system = self._as_system(context)
        self.ensure_signing_key(system)
        return self._keys.public_key_pem(system, self._signing_key)

    def ensure_signing_key(self, system: Context) -> None:
        try:
            self._keys.describe(system, self._signing_key)
        except KeyNotFound:
            self._keys.create(system, self._signing_key, KeyPurpose.SIGN, KeyAlgorithm.ECDSA_P256)

    # -- gates -------------------------------------------------------------------------------------
    def set_gate(self, context: Context, scope: str, policy: gates.GatePolicy) -> gates.GatePolicy:
        if scope != GLOBAL_GATE:
            check_model_name(scope)
        document = policy.model_dump(mode="json", exclude_none=True)
        details = {"scope": scope, "policy": document}
        with self._uow.act(context, "models.gate", self._resource(scope), details=details) as work:
            if scope != GLOBAL_GATE:
                model_row(work.session, scope)
            row = work.session.get(ModelGate, scope)
            if row is None:
                row = ModelGate(scope=scope)
                work.session.add(row)
            row.policy = document
            row.updated_by, row.updated_at = context.principal.id, self._clock.now()
            return policy

    def gate(self, context: Context, name: str) -> gates.GatePolicy:
        with self._uow.read(context, "models.read", self._resource(name)) as work:
            return _gate(work.session, name)

    # -- evidence ----------------------------------------------------------------------------------
    def declare_input_schema(
        self, context: Context, name: str, version: int, document: dict[str, Any]
    ) -> VersionInfo:
        """The version's input schema (one row). Once, and only before approval: what approvers review is
        what the gateway enforces."""
        schema = check_row_schema(document)
        details = {"version": version, "schema_sha256": schema_digest(schema)}
        with self._uow.act(context, "models.provenance", self._resource(name), details=details) as work:
            row = version_row(work.session, name, version)
            if row.input_schema is not None:
                raise Conflict(f"{name}@{version} already declares an input schema; push a new version.")
            if row.stage not in (REGISTERED, VALIDATED):
                raise Conflict(f"{name}@{version} is {row.stage}: declare its input schema before approval.")
            row.input_schema = schema
            work.session.flush()
            return version_info(work.session, row)

    def record_provenance(
        self, context: Context, name: str, version: int, document: dict[str, Any]
    ) -> VersionInfo:
        """Bind a training run's provenance to the version's digest: a signed in-toto statement. Once."""
        declared = provenance.parse(document)
        target = self._resource(name)
        self._uow.authorize(context, "models.provenance", target)
        with self._database.read() as session:
            row = version_row(session, name, version)
            filename, sha256 = row.filename, row.sha256
        statement = provenance.statement(filename, sha256, declared, context.principal.id)
        system = self._as_system(context)
        self.ensure_signing_key(system)
        signed, _ = sign_statement(self._keys, system, self._signing_key, statement)
        details = {"version": version, "sha256": sha256, "missing": declared.missing()}
        with self._uow.act(context, "models.provenance", target, details=details) as work:
            row = version_row(work.session, name, version)
            if row.provenance is not None:
                raise Conflict(
                    f"{name}@{version} already has provenance; a new training run is a new version."
                )
            if row.stage in (RETIRED, QUARANTINED):
                raise Conflict(f"{name}@{version} is {row.stage}.")
            row.provenance = {
                "statement": statement,
                "bundle": signed,
                "missing": declared.missing(),
            }
            work.session.flush()
            return version_info(work.session, row)

    def record_evaluation(
        self,
        context: Context,
        name: str,
        version: int,
        dataset: provenance.DatasetRef,
        metrics: dict[str, float],
    ) -> VersionInfo:
        """Holdout metrics of a version on a named evaluation dataset (by content hash), for its gate."""
        if not metrics or len(metrics) > 100:
            raise InvalidInput("An evaluation reports 1-100 metrics.")
        if any(not isinstance(v, int | float) or math.isnan(v) for v in metrics.values()):
            raise InvalidInput("Metrics are numbers.")
        details = {"version": version, "dataset": dataset.model_dump(mode="json"), "metrics": metrics}
        with self._uow.act(context, "models.evaluate", self._resource(name), details=details) as work:
            row = version_row(work.session, name, version)
            if row.stage not in (VALIDATED, APPROVED, PRODUCTION):
                raise Conflict(f"{name}@{version} is {row.stage}.")
            row.evaluation = {
                "dataset": dataset.model_dump(mode="json"),
                "metrics": {k: float(v) for k, v in metrics.items()},
                "by": context.principal.id,
                "at": self._clock.now().isoformat(),
            }
            work.session.flush()
            return version_info(work.session, row)

    # -- review ------------------------------------------------------------------------------------
    def approve(self, context: Context, name: str, version: int, comment: str = "") -> VersionInfo:
        return self._review(context, "models.approve", name, version, comment)

    def vet(self, context: Context, name: str, version: int, comment: str = "") -> VersionInfo:
        """Sign off a third-party model (its source, licence and scan) as fit to use."""
        return self._review(context, "models.vet", name, version, comment)

    def _review(self, context: Context, action: str, name: str, version: int, comment: str) -> VersionInfo:
        if len(comment) > 2000:
            raise InvalidInput("A comment is at most 2000 characters.")
        with self._database.read() as session:
            target = resource(session, name, version, author=True)
        details = {"version": version, "comment": comment}
        with self._uow.act(context, action, target, details=details) as work:
            row = version_row(work.session, name, version)
            reviewer = context.principal.id
            if reviewer == row.created_by:  # also a shipped forbid policy; checked twice on purpose
                raise Conflict("Nobody reviews their own version (separation of duties).")
            if row.stage not in (VALIDATED, APPROVED):
                raise Conflict(f"{name}@{version} is {row.stage}; only validated versions are reviewed.")
            if action == "models.vet":
                if row.origin != "third-party":
                    raise Conflict(f"{name}@{version} is not a third-party model.")
                row.vetted_by = reviewer
            else:
                if work.session.get(ModelApproval, (row.id, reviewer)) is not None:
                    raise Conflict(f"You already approved {name}@{version}.")
                work.session.add(
                    ModelApproval(
                        version_id=row.id, approver_id=reviewer, at=self._clock.now(), comment=comment
                    )
                )
            work.session.flush()
            return version_info(work.session, row)

    # -- stages ------------------------------------------------------------------------------------
    def promote(self, context: Context, name: str, version: int, stage: str) -> VersionInfo:
        """To ``approved`` when the gate passes (the result is stored either way), or from approved to
        ``production`` (the current production version, if any, goes back to approved)."""
        if stage not in (APPROVED, PRODUCTION):
            raise InvalidInput("A version is promoted to approved or production.")
        target = self._resource(name)
        details: dict[str, Any] = {"version": version, "to": stage}
        if stage == PRODUCTION:
            with self._uow.act(context, "models.promote", target, details=details) as work:
                row = version_row(work.session, name, version)
                if row.stage != APPROVED:
                    raise Conflict(
                        f"{name}@{version} is {row.stage}; only approved versions go to production."
                    )
                now, by = self._clock.now(), context.principal.id
                current = work.session.scalars(
                    select(ModelVersionRow).where(
                        ModelVersionRow.model_name == name, ModelVersionRow.stage == PRODUCTION
                    )
                ).first()
                if current is not None:
                    move(work.session, current, APPROVED, by, now, f"superseded by version {version}")
                    work.details["superseded"] = current.version
                move(work.session, row, PRODUCTION, by, now)
                work.session.flush()
                return version_info(work.session, row)
        self._uow.authorize(context, "models.promote", target, details=details)
        result = self._evaluate_gate(context, name, version)
        details["gate_passed"] = result["passed"]
        with self._uow.act(context, "models.promote", target, details=details) as work:
            row = version_row(work.session, name, version)
            if row.stage != VALIDATED:
                raise Conflict(f"{name}@{version} is {row.stage}; only validated versions are approved.")
            row.gate_result = result
            if result["passed"]:
                move(work.session, row, APPROVED, context.principal.id, self._clock.now(), "gate passed")
            work.session.flush()
            info = version_info(work.session, row)
        if not result["passed"]:
            failed = [c["name"] for c in result["checks"] if not c["passed"]]
            raise GateFailed(f"{name}@{version} did not pass its gate: {', '.join(failed)}.", gate=result)
        return info

    def _evaluate_gate(self, context: Context, name: str, version: int) -> dict[str, Any]:
        with self._database.read() as session:
            row = version_row(session, name, version)
            policy = _gate(session, name)
            approvers = [
                a for a in session.scalars(
                    select(ModelApproval.approver_id).where(ModelApproval.version_id == row.id)
                ).all() if a != row.created_by
            ]  # fmt: skip
            session.expunge(row)
        scan_ok = row.scan_verdict == "clean" or bool(row.scan_accepted_by)
        scan_detail = row.scan_verdict + (
            f" (accepted by policy {row.scan_accepted_by})" if scan_ok and row.scan_accepted_by else ""
        )
        with self._vault.workspace() as work:
            problem = self._loader.verify_into(context, row, work / row.filename)
        declared = row.provenance
        return gates.evaluate(
            policy,
            gates.GateFacts(
                scan=(scan_ok, scan_detail),
                signature=(problem is None, problem or "valid OMS signature over the registered digest"),
                provenance_missing=None if declared is None else list(declared.get("missing", [])),
                metrics=(row.evaluation or {}).get("metrics"),
                approvers=approvers,
                third_party=row.origin == "third-party",
                vetted_by=row.vetted_by,
            ),
        )

    def quarantine(self, context: Context, name: str, version: int, reason: str) -> VersionInfo:
        """Stop a version from loading at once (e.g. a new scanner finding), pending retirement."""
        if not reason.strip() or len(reason) > 2000:
            raise InvalidInput("Quarantining needs a reason (1-2000 characters).")
        details = {"version": version, "reason": reason}
        with self._uow.act(context, "models.quarantine", self._resource(name), details=details) as work:
            row = version_row(work.session, name, version)
            move(work.session, row, QUARANTINED, context.principal.id, self._clock.now(), reason)
            work.session.flush()
            return version_info(work.session, row)

    def retire(
        self, context: Context, name: str, version: int, *, reason: str, archive: bool = False
    ) -> VersionInfo:
        """Retire for good: no more loads or downloads; an archive copy (if asked) is re-encrypted under the
        archive key, then the version's own key is destroyed and its ciphertext removed. Re-running finishes
        a retirement that was interrupted."""
        if not reason.strip() or len(reason) > 2000:
            raise InvalidInput("Retiring needs a reason (1-2000 characters).")
        details = {"version": version, "reason": reason, "archive": archive}
        with self._uow.act(context, "models.retire", self._resource(name), details=details) as work:
            row = version_row(work.session, name, version)
            if row.stage != RETIRED:
                move(work.session, row, RETIRED, context.principal.id, self._clock.now(), reason)
            elif row.shredded_at is not None:
                raise Conflict(f"{name}@{version} is already retired and shredded.")
            version_id, key_name, archived = row.id, row.key_name, row.archived
        if key_name is not None:
            if archive and not archived:
                self._vault.archive(context, version_id)
                self._mark(version_id, archived=True)
            self._vault.shred(context, version_id, key_name)
        self._mark(version_id, shredded=True)
        with self._database.read() as session:
            return version_info(session, version_row(session, name, version))

    def _mark(self, version_id: str, *, archived: bool = False, shredded: bool = False) -> None:
        """Bookkeeping after the audited retirement: which of its physical steps are done."""
        with self._database.transaction() as session:
            row = session.get(ModelVersionRow, version_id)
            if row is None:
                raise NotFound("The version disappeared during retirement.")
            if archived:
                row.archived = True
            if shredded:
                row.shredded_at = self._clock.now()

    # -- helpers -----------------------------------------------------------------------------------
    def _resource(self, name: str) -> Resource:
        if name == GLOBAL_GATE:
            return Resource("model", "*")
        with self._database.read() as session:
            return resource(session, name)

    def _as_system(self, context: Context) -> Context:
        return replace(self._system, request_id=context.request_id)


def _gate(session: Session, name: str) -> gates.GatePolicy:
    for scope in (name, GLOBAL_GATE):
        row = session.get(ModelGate, scope)
        if row is not None:
            return gates.GatePolicy.model_validate(row.policy)
    return gates.DEFAULT_GATE

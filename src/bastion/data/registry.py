"""Datasets: creation with a schema, schema changes by a data steward, listing, and re-identification of
pseudonyms — each through the policy engine and the audit log. Ingestion is ``ingest``, export ``export``."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.data import transforms
from bastion.data.pii import PiiEngine, RecognizerResult
from bastion.data.pseudonyms import Pseudonymizer
from bastion.data.records import (
    DatasetInfo,
    DatasetVersionInfo,
    check_name,
    dataset_info,
    dataset_row,
    resource,
    version_info,
)
from bastion.data.schema import parse_schema
from bastion.keys.errors import KeyNotFound
from bastion.keys.fields import FieldCipher
from bastion.keys.manager import SYSTEM_OWNED_PREFIX, KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetQuarantine, DatasetRow, DatasetVersionRow, Pseudonym

_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
ANALYZE_MAX_CHARS = 1_000_000


def dataset_key(name: str) -> str:
    """The dataset's own key (system-owned): field encryption and the pseudonym HMAC keys derive from it."""
    return f"{SYSTEM_OWNED_PREFIX}datasets/{name}"


class DatasetRegistry:
    def __init__(
        self, uow: UnitOfWork, database: Database, clock: Clock, keys: KeyManager, system: Context
    ) -> None:
        self._uow, self._database, self._clock, self._keys, self._system = uow, database, clock, keys, system

    def as_system(self, context: Context) -> Context:
        return replace(self._system, request_id=context.request_id)

    def cipher(self, context: Context, name: str) -> FieldCipher:
        return FieldCipher(self._keys, self.as_system(context), dataset_key(name))

    def tools(self, context: Context, name: str, pii: PiiEngine) -> transforms.Tools:
        """What the transforms of ``name`` need: its field cipher and pseudonymizer, made on first use (each
        use of the dataset's key is an audited action), and the PII engine."""
        return transforms.Tools(
            dataset=name,
            cipher=lambda: self.cipher(context, name),
            pseudonymizer=lambda: Pseudonymizer(self.key_material(context, name), name),
            pii=pii,
        )

    def key_material(self, context: Context, name: str) -> bytes:
        """The dataset key's field-key material (pseudonym HMAC keys derive from it): an audited use."""
        _, material = self._keys.field_keys(self.as_system(context), dataset_key(name))
        return material

    def create(
        self,
        context: Context,
        name: str,
        schema: Any,
        *,
        purposes: list[str],
        region: str,
        description: str = "",
        retention_days: int | None = None,
    ) -> DatasetInfo:
        check_name(name)
        parsed = parse_schema(schema)
        if not purposes or any(not _PURPOSE.fullmatch(p) for p in purposes):
            raise InvalidInput(
                "A dataset serves 1 or more declared purposes (lowercase names, e.g. 'fraud-model')."
            )
        if not _REGION.fullmatch(region):
            raise InvalidInput("A region is a lowercase name such as 'eu-west-1' or 'us'.")
        if retention_days is not None and not 1 <= retention_days <= 36500:
            raise InvalidInput("Retention is 1-36500 days.")
        if len(description) > 2000:
            raise InvalidInput("A description is at most 2000 characters.")
        target = Resource(
            "dataset",
            name,
            {"classification": parsed.classification, "region": region, "owner": context.principal.id},
        )
        details = {"purposes": purposes, "region": region, "classification": parsed.classification}
        with self._uow.act(context, "data.create", target, details=details) as work:
            if work.session.get(DatasetRow, name) is not None:
                raise Conflict(f"A dataset named {name} already exists.")
            row = DatasetRow(
                name=name,
                description=description,
                purposes=sorted(set(purposes)),
                region=region,
                retention_days=retention_days,
                schema=parsed.model_dump(mode="json", exclude_none=True),
                created_by=context.principal.id,
                created_at=self._clock.now(),
            )
            work.session.add(row)
            work.session.flush()
            info = dataset_info(row)
        system = self.as_system(context)
        try:
            self._keys.describe(system, dataset_key(name))
        except KeyNotFound:
            self._keys.create(system, dataset_key(name), KeyPurpose.ENCRYPT)
        return info

    def set_schema(self, context: Context, name: str, schema: Any) -> DatasetInfo:
        """A data steward confirms classification suggestions (or changes transforms) by setting the schema.
        Existing versions keep the schema they were ingested under (in their report)."""
        parsed = parse_schema(schema)
        target = self._resource(name)
        details = {"classification": parsed.classification}
        with self._uow.act(context, "data.schema", target, details=details) as work:
            row = dataset_row(work.session, name)
            row.schema = parsed.model_dump(mode="json", exclude_none=True)
            work.session.flush()
            return dataset_info(row)

    def list_datasets(self, context: Context) -> list[DatasetInfo]:
        with self._uow.read(context, "data.read", Resource("dataset", "*")) as work:
            return [
                dataset_info(r) for r in work.session.scalars(select(DatasetRow).order_by(DatasetRow.name))
            ]

    def describe(self, context: Context, name: str) -> tuple[DatasetInfo, list[DatasetVersionInfo]]:
        with self._uow.read(context, "data.read", self._resource(name)) as work:
            row = dataset_row(work.session, name)
            versions = work.session.scalars(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.dataset_name == name, DatasetVersionRow.shredded_at.is_(None))
                .order_by(DatasetVersionRow.version)
            ).all()
            return dataset_info(row), [version_info(v) for v in versions]

    def quarantined(self, context: Context, name: str) -> list[dict[str, Any]]:
        with self._uow.read(context, "data.read", self._resource(name)) as work:
            rows = work.session.scalars(
                select(DatasetQuarantine)
                .where(DatasetQuarantine.dataset_name == name)
                .order_by(DatasetQuarantine.created_at)
            ).all()
            return [
                {"id": r.id, "filename": r.filename, "sha256": r.sha256, "size": r.size, "reason": r.reason,
                 "report": r.report, "by": r.created_by, "at": r.created_at.isoformat()}
                for r in rows
            ]  # fmt: skip

    def reidentify(self, context: Context, name: str, field: str, token: str) -> str:
        """The value behind a pseudonym: for data stewards, each use audited (field and token, never the
        value)."""
        details = {"field": field, "pseudonym": token}
        with self._uow.act(context, "data.reidentify", self._resource(name), details=details) as work:
            row = work.session.get(Pseudonym, (name, field, token))
            if row is None:
                raise NotFound(f"No pseudonym {token} in {name}.{field}.")
            encrypted = row.value_encrypted
        return self.cipher(context, name).decrypt(encrypted, context=f"{name}.{field}#pseudonym")

    def analyze(
        self, context: Context, engine: PiiEngine, text: str, entities: list[str] | None, threshold: float
    ) -> list[RecognizerResult]:
        """Run the PII engine on text the caller sends: authorized and audited (counts, never the text)."""
        if len(text) > ANALYZE_MAX_CHARS:
            raise InvalidInput(f"Text to analyze is at most {ANALYZE_MAX_CHARS} characters.")
        with self._uow.act(
            context, "data.analyze", Resource("dataset", "*"), details={"chars": len(text)}
        ) as work:
            results = engine.analyze(text, entities=entities, threshold=threshold)
            work.details["found"] = dict(Counter(r.entity_type for r in results))
            return results

    def _resource(self, name: str) -> Resource:
        with self._database.read() as session:
            return resource(session, name)

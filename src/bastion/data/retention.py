"""Retention: dataset versions older than their policy allows are deleted by crypto-shredding — the version's
own key destroyed, its ciphertext removed — and each deletion leaves a certificate in the audit log: what
(dataset, version, content hashes, rows), when it was created and expired, under which policy, when it was
deleted and which key was destroyed. A dry run lists what would go and changes nothing.

The policy is the dataset's ``retention_days``, or else the deployment's default for the dataset's
classification (``data_retention_days``); a dataset with neither keeps its versions. When a dataset's last
version goes, its pseudonym table (the encrypted originals behind its tokens) goes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from bastion.core.clock import Clock
from bastion.data.records import dataset_info, resource
from bastion.keys.vault import ObjectVault
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetRow, DatasetVersionRow, Pseudonym

ACTION = "data.retention"


@dataclass(frozen=True, slots=True)
class Expired:
    dataset: str
    version: int
    version_id: str
    sha256: str
    source_sha256: str
    rows: int
    created_at: datetime
    expired_at: datetime
    key_name: str | None
    policy: dict[str, Any]

    def certificate(self, deleted_at: datetime) -> dict[str, Any]:
        return {
            "certificate": "deletion",
            "dataset": self.dataset,
            "version": self.version,
            "sha256": self.sha256,
            "source_sha256": self.source_sha256,
            "rows": self.rows,
            "created_at": self.created_at.isoformat(),
            "expired_at": self.expired_at.isoformat(),
            "policy": self.policy,
            "deleted_at": deleted_at.isoformat(),
            "key_destroyed": self.key_name,
        }


class DataRetention:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        vault: ObjectVault,
        defaults: dict[str, int],
    ) -> None:
        self._uow, self._database, self._clock, self._vault = uow, database, clock, vault
        self._defaults = defaults  # classification -> days

    def expired(self) -> list[Expired]:
        """Every live version past its retention, oldest first."""
        now = self._clock.now()
        found: list[Expired] = []
        with self._database.read() as session:
            for dataset in session.scalars(select(DatasetRow).order_by(DatasetRow.name)):
                policy = self._policy(dataset)
                if policy is None:
                    continue
                days = int(policy["retention_days"])
                cutoff = now - timedelta(days=days)
                versions = session.scalars(
                    select(DatasetVersionRow)
                    .where(
                        DatasetVersionRow.dataset_name == dataset.name,
                        DatasetVersionRow.shredded_at.is_(None),
                        DatasetVersionRow.created_at <= cutoff,
                    )
                    .order_by(DatasetVersionRow.version)
                )
                found += [
                    Expired(
                        dataset.name,
                        v.version,
                        v.id,
                        v.sha256,
                        v.source_sha256,
                        v.rows,
                        v.created_at,
                        v.created_at + timedelta(days=days),
                        v.key_name,
                        policy,
                    )
                    for v in versions
                ]
        return found

    def run(self, context: Context, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Delete what has expired (with ``dry_run``, only say what would go); returns the certificates."""
        certificates: list[dict[str, Any]] = []
        for item in self.expired():
            with self._database.read() as session:
                target = resource(session, item.dataset)
            if dry_run:
                self._uow.authorize(context, ACTION, target, details={"version": item.version})
                certificates.append({**item.certificate(self._clock.now()), "dry_run": True})
                continue
            certificates.append(self._delete(context, item, target))
        return certificates

    def _delete(self, context: Context, item: Expired, target: Any) -> dict[str, Any]:
        self._uow.authorize(context, ACTION, target, details={"version": item.version})
        # Key first: from here on the bytes are unreadable wherever a copy is. A crash before the record
        # below leaves a version whose key is gone; the next run finishes it (shredding is idempotent).
        if item.key_name is not None:
            self._vault.shred(context, item.version_id, item.key_name)
        deleted_at = self._clock.now()
        certificate = item.certificate(deleted_at)
        with self._uow.act(context, ACTION, target, details=certificate) as work:
            row = work.session.get(DatasetVersionRow, item.version_id)
            if row is not None:
                row.shredded_at, row.key_name = deleted_at, None
            live = work.session.scalar(
                select(DatasetVersionRow.id).where(
                    DatasetVersionRow.dataset_name == item.dataset, DatasetVersionRow.shredded_at.is_(None)
                )
            )
            if live is None:
                gone = work.session.execute(delete(Pseudonym).where(Pseudonym.dataset_name == item.dataset))
                work.details["pseudonyms_deleted"] = gone.rowcount  # type: ignore[attr-defined]
        return certificate

    def _policy(self, dataset: DatasetRow) -> dict[str, Any] | None:
        if dataset.retention_days is not None:
            return {"retention_days": dataset.retention_days, "source": "dataset"}
        classification = dataset_info(dataset).schema.classification
        days = self._defaults.get(classification)
        if days is None:
            return None
        return {"retention_days": days, "source": f"classification:{classification}"}

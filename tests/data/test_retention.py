"""Retention deletes exactly the expired versions — key destroyed, ciphertext gone, a certificate in the audit
log — a dry run changes nothing, and a classification default covers datasets that declare no retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.errors import NotFound, PermissionDenied
from bastion.spine import Context
from bastion.store.tables import DatasetVersionRow
from tests.data.conftest import CSV, SCHEMA, ingest
from tests.gateway.conftest import rebuilt

SECOND = CSV + "4,dee@example.com,4111111111111111,51,10115,,2021-01-01\n"


def certificates(system: Bastion) -> list[dict[str, object]]:
    found = system.audit.search(operator_context(), AuditFilter(action="data.retention")).events
    return [e.details for e in found if e.outcome == "allowed"]  # type: ignore[attr-defined]


def test_retention_deletes_exactly_the_expired_versions_with_certificates(
    system: Bastion, people: dict[str, Context], customers: str, clock: FrozenClock
) -> None:
    dana = people["dana"]
    old = ingest(system, dana, customers, CSV.encode())
    clock.advance(timedelta(days=200))
    new = ingest(system, dana, customers, SECOND.encode())
    clock.advance(timedelta(days=200))  # old: 400 days (past 365), new: 200 days
    old_key = system.datasets.describe(dana, customers)[1][0]
    with system.database.read() as session:
        key_name = session.get(DatasetVersionRow, old.id).key_name  # type: ignore[union-attr]

    planned = system.retention.run(operator_context(), dry_run=True)
    assert [(c["dataset"], c["version"], c["dry_run"]) for c in planned] == [(customers, 1, True)]
    assert len(system.datasets.describe(dana, customers)[1]) == 2 and certificates(system) == []

    [certificate] = system.retention.run(operator_context())
    assert certificate["sha256"] == old.sha256 and certificate["version"] == 1
    assert certificate["policy"] == {"retention_days": 365, "source": "dataset"}
    assert certificate["key_destroyed"] == key_name
    assert certificates(system) == [certificate]  # the certificate is in the audit log
    # Crypto-shredded: the key's material is destroyed, and the ciphertext is gone too.
    assert system.keys.describe(operator_context(), key_name).state == "destroyed"  # type: ignore[arg-type]
    assert not any(p.name.startswith(old.id) for p in system.settings.datasets_dir.rglob("*"))
    with pytest.raises(NotFound):
        system.data_export.export(dana, customers, 1, "csv", Path("/nonexistent/x.csv"))
    assert [v.version for v in system.datasets.describe(dana, customers)[1]] == [2]
    assert old_key.version == 1 and new.version == 2
    assert system.retention.run(operator_context()) == []  # nothing else has expired


def test_the_classification_default_applies_when_a_dataset_declares_none(
    system: Bastion,
    people: dict[str, Context],
    tmp_path: Path,
    database_url: str,
    clock: FrozenClock,
) -> None:
    deployed = rebuilt(tmp_path, database_url, clock, data_retention_days={"restricted": 30})
    try:
        dana = people["dana"]
        deployed.datasets.create(dana, "cards", SCHEMA, purposes=["analytics"], region="eu-west-1")
        ingest(deployed, dana, "cards", CSV.encode())
        clock.advance(timedelta(days=29))
        assert deployed.retention.run(operator_context()) == []
        clock.advance(timedelta(days=2))
        [certificate] = deployed.retention.run(operator_context())
        assert certificate["policy"] == {"retention_days": 30, "source": "classification:restricted"}
    finally:
        deployed.close()


def test_only_the_permitted_run_retention(
    system: Bastion, people: dict[str, Context], customers: str, clock: FrozenClock
) -> None:
    ingest(system, people["dana"], customers, CSV.encode())
    clock.advance(timedelta(days=400))
    with pytest.raises(PermissionDenied):
        system.retention.run(people["vic"])
    assert len(system.datasets.describe(people["dana"], customers)[1]) == 1

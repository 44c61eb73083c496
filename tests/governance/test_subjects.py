"""Data-subject rights end to end: access finds the subject through a pseudonym token and through field-level
encryption; erasure, in one command, removes the subject from every retained dataset version and flags the
model trained on it — and afterwards the subject's identifier is nowhere in Bastion's storage, checked by
decrypting everything that remains and by reading every table and every file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.errors import Conflict, InvalidInput, PermissionDenied
from bastion.data.pseudonyms import Pseudonymizer
from bastion.data.versions import load_rows
from bastion.spine import Context
from bastion.store.tables import Base, DatasetVersionRow, ModelReview, Pseudonym
from tests.data.conftest import ingest
from tests.governance.conftest import SUBJECT, Estate
from tests.governance.test_lineage import COPY_SCHEMA


def live_rows(system: Bastion) -> dict[str, list[dict[str, Any]]]:
    """Every retained dataset version, decrypted."""
    with system.database.read() as session:
        versions = session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.shredded_at.is_(None)))
        refs = [(v.id, f"{v.dataset_name}@{v.version}") for v in versions]
    ops = operator_context()
    return {ref: load_rows(system.data_export._vault, ops, vid, ref) for vid, ref in refs}


def traces_of_subject(system: Bastion) -> list[str]:
    """Everywhere the subject could still be found, decrypting what is encrypted."""
    ops = operator_context()
    token = Pseudonymizer(system.datasets.key_material(ops, "customers"), "customers").token("email", SUBJECT)
    tickets = system.datasets.cipher(ops, "tickets")
    found = []
    for ref, rows in live_rows(system).items():
        for row in rows:
            if SUBJECT in map(str, row.values()) or token in map(str, row.values()):
                found.append(f"{ref}: {row}")
            contact = row.get("contact")
            if contact and tickets.decrypt(contact, context="tickets.contact") == SUBJECT:
                found.append(f"{ref}: encrypted contact")
    customers = system.datasets.cipher(ops, "customers")
    with system.database.read() as session:
        for entry in session.scalars(select(Pseudonym)):
            cipher = customers if entry.dataset_name == "customers" else tickets
            context = f"{entry.dataset_name}.{entry.field}#pseudonym"
            if cipher.decrypt(entry.value_encrypted, context=context) == SUBJECT:
                found.append(f"pseudonym {entry.dataset_name}.{entry.field}")
        for table in Base.metadata.sorted_tables:  # every row of every table, audit log included
            for row in session.execute(select(table)):
                if SUBJECT in str(tuple(row)):
                    found.append(f"table {table.name}")
    for path in system.settings.state_dir.rglob("*"):  # every file: database, WAL, keyring, blobs
        if path.is_file() and SUBJECT.encode() in path.read_bytes():
            found.append(f"file {path.name}")
    return found


def test_access_finds_the_subject_through_tokens_and_encryption(
    system: Bastion, people: dict[str, Context], estate: Estate
) -> None:
    request = system.subjects.register(people["dana"], "access", SUBJECT)
    outcome = system.subjects.run(people["dana"], request.id)
    assert sorted(outcome.records) == ["dataset:customers@1", "dataset:customers@2", "dataset:tickets@1"]
    assert [r["ticket"] for r in outcome.records["dataset:tickets@1"]] == [1, 3]
    assert [r["customer_id"] for r in outcome.records["dataset:customers@2"]] == [1]
    assert outcome.request.status == "completed" and outcome.request.result["records"] == 4  # type: ignore[index]
    assert outcome.request.result["versions_replaced"] == []  # type: ignore[index]  # access changes nothing
    with pytest.raises(Conflict):
        system.subjects.run(people["dana"], request.id)  # answered once


def test_erasure_removes_the_subject_everywhere_and_flags_the_model(
    system: Bastion, people: dict[str, Context], estate: Estate
) -> None:
    assert traces_of_subject(system)  # the check finds the subject before the erasure
    request = system.subjects.register(people["dana"], "erasure", SUBJECT)
    outcome = system.subjects.run(people["dana"], request.id)
    result = outcome.request.result or {}
    assert sorted(result["versions_replaced"]) == [
        "dataset:customers@1", "dataset:customers@2", "dataset:tickets@1",
    ]  # fmt: skip
    assert result["models_flagged"] == ["model:churn@1"]
    assert traces_of_subject(system) == []
    remaining = live_rows(system)
    assert sorted(remaining) == ["customers@3", "customers@4", "tickets@2"]
    assert [r["customer_id"] for r in remaining["customers@4"]] == [2, 3, 4]  # everyone else is kept
    assert [r["ticket"] for r in remaining["tickets@2"]] == [2]
    with system.database.read() as session:
        [review] = session.scalars(select(ModelReview)).all()
        assert request.id in review.reason and review.source == request.id
    # Lineage keeps the story: the new version derives from the erased one, by erasure.
    graph = system.lineage.impact(operator_context(), "customers", 2)
    assert {"from": "dataset:customers@2", "to": "dataset:customers@4", "relation": "erasure"} in graph.edges
    events = system.audit.search(operator_context(), AuditFilter(action="data.subjects")).events
    assert events and all(SUBJECT not in str(e.details) for e in events)  # type: ignore[attr-defined]


def test_rectification_corrects_the_subjects_rows_only(
    system: Bastion, people: dict[str, Context], estate: Estate
) -> None:
    request = system.subjects.register(people["dana"], "rectification", SUBJECT, {"zip": "20095"})
    system.subjects.run(people["dana"], request.id)
    rows = live_rows(system)["customers@4"]
    assert {r["customer_id"]: r["zip"] for r in rows} == {1: "20095", 2: "10117", 3: "10119", 4: "10115"}


def test_requests_are_tracked_against_their_deadline(
    system: Bastion, people: dict[str, Context], estate: Estate, clock: FrozenClock
) -> None:
    request = system.subjects.register(people["dana"], "erasure", SUBJECT)
    assert request.due_at - request.created_at == timedelta(days=30) and not request.overdue
    clock.advance(timedelta(days=31))
    [overdue] = system.subjects.requests(people["dana"], overdue_only=True)
    assert overdue.id == request.id
    assert system.subjects.alert_overdue(operator_context()) == 1
    alerts = system.audit.search(operator_context(), AuditFilter(action="data.subjects")).events
    assert any(e.details.get("severity") == "critical" for e in alerts)  # type: ignore[attr-defined]


def test_refusals(system: Bastion, people: dict[str, Context], estate: Estate) -> None:
    with pytest.raises(PermissionDenied):
        system.subjects.register(people["vic"], "erasure", SUBJECT)
    with pytest.raises(InvalidInput):
        system.subjects.register(people["dana"], "forget-me", SUBJECT)
    with pytest.raises(InvalidInput):
        system.subjects.register(people["dana"], "rectification", SUBJECT)  # names no corrected field
    with pytest.raises(InvalidInput):
        system.subjects.register(people["dana"], "erasure", " ")
    bad = system.subjects.register(people["dana"], "rectification", SUBJECT, {"no_such_field": "x"})
    with pytest.raises(InvalidInput):
        system.subjects.run(people["dana"], bad.id)
    assert sorted(live_rows(system)) == ["customers@1", "customers@2", "tickets@1"]  # nothing changed


def test_erasure_follows_the_subjects_token_into_a_dataset_made_from_an_export(
    system: Bastion, people: dict[str, Context], estate: Estate, tmp_path: Path
) -> None:
    dana = people["dana"]
    exported = tmp_path / "customers.csv"
    system.data_export.export(dana, "customers", 2, "csv", exported)  # emails leave as customers' tokens
    fields = [{**f, "subject": f["name"] == "email"} for f in COPY_SCHEMA["fields"]]
    copy_schema = {**COPY_SCHEMA, "fields": fields}
    system.datasets.create(dana, "customers-copy", copy_schema, purposes=["analytics"], region="eu-west-1")
    ingest(system, dana, "customers-copy", exported.read_bytes(), "customers.csv")
    request = system.subjects.register(dana, "erasure", SUBJECT)
    result = system.subjects.run(dana, request.id).request.result or {}
    assert "dataset:customers-copy@1" in result["versions_replaced"]
    assert [r["customer_id"] for r in live_rows(system)["customers-copy@2"]] == [2, 3, 4]
    assert traces_of_subject(system) == []

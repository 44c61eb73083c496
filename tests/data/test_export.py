"""Export for a declared purpose: minimised, transformed, k-anonymous where declared, formula-safe CSV, and
audited with its purpose; pseudonyms stable per key and field, re-identifiable only by a data steward."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.errors import InvalidInput, PermissionDenied
from bastion.data.pseudonyms import Pseudonymizer
from bastion.spine import Context
from tests.data.conftest import CSV, SCHEMA, ingest


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_export_minimises_transforms_neutralises_and_audits(
    system: Bastion, people: dict[str, Context], customers: str, tmp_path: Path
) -> None:
    ingest(system, people["eli"], customers, CSV.encode())
    target = tmp_path / "out.csv"
    report = system.data_export.export(people["eli"], customers, None, "csv", target)
    assert report.dropped == ["card"]  # only needed for billing; this export is for analytics
    exported = rows_of(target)
    assert set(exported[0]) == {"customer_id", "email", "age", "zip", "note", "signup"}
    assert all(row["email"].startswith("ps_") for row in exported)  # pseudonymised on ingest
    assert exported[0]["note"] == "call me at <PHONE_NUMBER>"  # redacted on export
    assert exported[2]["note"].startswith("'=HYPERLINK")  # CSV formula injection neutralised
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    [event] = system.audit.search(operator_context(), AuditFilter(action="data.export")).events
    assert (
        event.purpose == "analytics" and event.details["dropped"] == ["card"] and event.details["rows"] == 3
    )

    billing = replace(people["eli"], purpose="billing")
    system.data_export.export(billing, customers, 1, "jsonl", tmp_path / "billing.jsonl")
    cards = [json.loads(line)["card"] for line in (tmp_path / "billing.jsonl").read_text().splitlines()]
    assert cards == ["************1111", "************5559", "***********0009"]  # masked on ingest


def test_export_needs_a_declared_purpose_the_dataset_serves(
    system: Bastion, people: dict[str, Context], customers: str, tmp_path: Path
) -> None:
    ingest(system, people["eli"], customers, CSV.encode())
    with pytest.raises(InvalidInput, match="purpose"):
        system.data_export.export(
            replace(people["eli"], purpose=None), customers, None, "csv", tmp_path / "a.csv"
        )
    with pytest.raises(PermissionDenied, match="marketing"):
        system.data_export.export(
            replace(people["eli"], purpose="marketing"), customers, None, "csv", tmp_path / "b.csv"
        )
    with pytest.raises(PermissionDenied):
        system.data_export.export(people["vic"], customers, None, "csv", tmp_path / "c.csv")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()
    denied = list(system.audit.search(operator_context(), AuditFilter(action="data.export")).events)
    assert [e.outcome for e in denied] == ["denied", "denied"]
    assert denied[0].purpose == "marketing"


def test_k_anonymity_over_quasi_identifiers(
    system: Bastion, people: dict[str, Context], tmp_path: Path
) -> None:
    schema = {
        "fields": [
            {"name": "age", "type": "integer"},
            {"name": "zip", "type": "string"},
            {"name": "diagnosis", "type": "string", "classification": "restricted", "categories": ["PHI"]},
        ],
        "k_anonymity": {"quasi_identifiers": ["age", "zip"], "k": 3, "max_suppression": 0.1},
    }
    system.datasets.create(people["dana"], "visits", schema, purposes=["analytics"], region="eu-west-1")
    lines = ["age,zip,diagnosis"]
    lines += [f"{30 + i % 7},1011{i % 5},flu" for i in range(60)] + ["99,99999,rare"]
    ingest(system, people["eli"], "visits", ("\n".join(lines) + "\n").encode())
    report = system.data_export.export(people["eli"], "visits", None, "csv", tmp_path / "v.csv")
    assert report.k_anonymity is not None
    assert report.k_anonymity["k_achieved"] >= 3 and report.k_anonymity["suppression_rate"] <= 0.1
    groups: dict[tuple[str, str], int] = {}
    for row in rows_of(tmp_path / "v.csv"):
        groups[(row["age"], row["zip"])] = groups.get((row["age"], row["zip"]), 0) + 1
    assert min(groups.values()) >= 3  # every combination of quasi-identifiers is shared by 3 rows or more
    assert "99" not in {row["age"] for row in rows_of(tmp_path / "v.csv")}


def test_pseudonyms_stable_per_key_differ_between_keys_and_reidentify_only_for_stewards(
    system: Bastion, people: dict[str, Context], customers: str, tmp_path: Path
) -> None:
    ingest(system, people["eli"], customers, CSV.encode())
    system.data_export.export(people["eli"], customers, None, "csv", tmp_path / "one.csv")
    token = rows_of(tmp_path / "one.csv")[0]["email"]
    # A later upload of the same person gets the same token (one key, one field) ...
    ingest(system, people["eli"], customers, CSV.replace(",34,", ",35,").encode())
    system.data_export.export(people["eli"], customers, 2, "csv", tmp_path / "two.csv")
    assert rows_of(tmp_path / "two.csv")[0]["email"] == token
    # ... another dataset (another key) gives another token for the same value ...
    system.datasets.create(people["dana"], "customers-b", SCHEMA, purposes=["analytics"], region="eu-west-1")
    ingest(system, people["eli"], "customers-b", CSV.encode())
    system.data_export.export(people["eli"], "customers-b", None, "csv", tmp_path / "b.csv")
    assert rows_of(tmp_path / "b.csv")[0]["email"] != token
    # ... and under a different key material the token differs too.
    assert Pseudonymizer(b"k" * 32, customers).token("email", "ann@example.com") != Pseudonymizer(
        b"j" * 32, customers
    ).token("email", "ann@example.com")

    with pytest.raises(PermissionDenied):
        system.datasets.reidentify(people["eli"], customers, "email", token)
    assert system.datasets.reidentify(people["dana"], customers, "email", token) == "ann@example.com"
    events = system.audit.search(operator_context(), AuditFilter(action="data.reidentify")).events
    assert [(e.actor_id, e.outcome) for e in events] == [("user:eli", "denied"), ("user:dana", "allowed")]
    assert all("ann@example.com" not in json.dumps(e.details) for e in events)  # the value is never audited


def test_field_encryption_transform_and_classification_suggestions(
    system: Bastion, people: dict[str, Context], tmp_path: Path
) -> None:
    from bastion.data.registry import dataset_key  # noqa: PLC0415
    from bastion.keys.fields import FieldCipher  # noqa: PLC0415

    schema = {
        "fields": [
            {"name": "id", "type": "integer"},
            {"name": "contact", "type": "string", "classification": "internal"},  # understated: holds emails
            {"name": "ssn", "type": "string", "classification": "restricted", "categories": ["PII"]},
        ],
        "transforms": [{"field": "ssn", "op": "encrypt"}],
    }
    system.datasets.create(people["dana"], "hr", schema, purposes=["analytics"], region="eu-west-1")
    data = "id,contact,ssn\n1,ann@example.com,536-22-1234\n2,bob@example.org,536-22-4321\n"
    version = ingest(system, people["eli"], "hr", data.encode())
    suggestions = {s["field"]: s for s in version.report["classification_suggestions"]}
    suggestion = suggestions["contact"]
    assert suggestion["understated"] is True and suggestions["ssn"]["understated"] is False
    assert (
        suggestion["suggested_categories"] == ["PII"]
        and suggestion["suggested_classification"] == "confidential"
    )
    system.data_export.export(people["eli"], "hr", None, "csv", tmp_path / "hr.csv")
    ssns = [row["ssn"] for row in rows_of(tmp_path / "hr.csv")]
    assert all(s.startswith("bf1.") for s in ssns)  # field-level ciphertext, not the number
    cipher = FieldCipher(system.keys, operator_context(), dataset_key("hr"))
    assert [cipher.decrypt(s, context="hr.ssn") for s in ssns] == ["536-22-1234", "536-22-4321"]
    # The steward confirms the suggestion by tightening the schema; new exports see the new classification.
    schema["fields"][1].update(classification="confidential", categories=["PII"])  # type: ignore[index]
    assert system.datasets.set_schema(people["dana"], "hr", schema).schema.field("contact").categories == [
        "PII"
    ]
    with pytest.raises(PermissionDenied):
        system.datasets.set_schema(people["eli"], "hr", schema)

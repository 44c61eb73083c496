"""Lineage from what Bastion recorded: a model's provenance digest matched to a dataset version (directly or
through an export of it), an export ingested elsewhere as a derived dataset, and impact downstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.core.digests import file_digest
from bastion.core.errors import NotFound, PermissionDenied
from bastion.spine import Context
from tests.data.conftest import ingest
from tests.gateway.conftest import breast_cancer_model
from tests.governance.conftest import Estate
from tests.models.conftest import person as model_person
from tests.models.conftest import push

COPY_SCHEMA = {
    "fields": [
        {"name": "customer_id", "type": "integer"},
        {"name": "email", "type": "string"},
        {"name": "age", "type": "integer"},
        {"name": "zip", "type": "string"},
        {"name": "note", "type": "string", "required": False},
        {"name": "signup", "type": "date"},
    ]
}


def test_model_lineage_and_dataset_impact(
    system: Bastion, people: dict[str, Context], estate: Estate, tmp_path: Path
) -> None:
    dana, ops = people["dana"], operator_context()
    exported = tmp_path / "customers.csv"
    system.data_export.export(dana, "customers", 2, "csv", exported)
    system.datasets.create(dana, "customers-copy", COPY_SCHEMA, purposes=["analytics"], region="eu-west-1")
    copy = ingest(system, dana, "customers-copy", exported.read_bytes(), "customers.csv")
    # A second model trained on the exported file: its digest leads back to customers@2 through the export.
    alice = model_person("alice")
    system.models.create(alice, "upsell", classification="internal")
    push(system, alice, "upsell", breast_cancer_model(), "model.joblib", chunk=65536)
    system.models.record_provenance(
        alice, "upsell", 1, {"datasets": [{"name": "export", "sha256": file_digest(exported)}]}
    )

    shown = system.lineage.model(ops, "churn", 1)
    assert {"from": "dataset:customers@2", "to": "model:churn@1", "relation": "trained"} in shown.edges
    via_export = system.lineage.model(ops, "upsell", 1)
    assert {"from": "dataset:customers@2", "to": "model:upsell@1", "relation": "trained"} in via_export.edges

    impact = system.lineage.impact(ops, "customers", 2)
    assert {
        "from": "dataset:customers@2", "to": f"dataset:customers-copy@{copy.version}",
        "relation": "export for analytics",
    } in impact.edges  # fmt: skip
    trained = {e["to"] for e in impact.edges if e["relation"] == "trained"}
    assert trained == {"model:churn@1", "model:upsell@1"}
    assert {e["to"] for e in system.lineage.impact(ops, "customers", 1).edges} == set()  # nothing from v1
    node = impact.nodes["dataset:customers@2"]
    assert node["transforms"] == ["pseudonymise email", "mask card"]


def test_lineage_reads_are_authorized_and_unknowns_are_not_found(
    system: Bastion, people: dict[str, Context], estate: Estate
) -> None:
    outsider = Context(model_person("nobody").principal)
    with pytest.raises(PermissionDenied):
        system.lineage.model(outsider, "churn", 1)
    with pytest.raises(NotFound):
        system.lineage.model(operator_context(), "churn", 9)
    with pytest.raises(NotFound):
        system.lineage.impact(operator_context(), "customers", 9)

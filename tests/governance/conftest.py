"""Two datasets that hold one data subject — by a pseudonymised field and by a field-encrypted one — and a
model version trained on one of them (its provenance names the dataset version's digest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bastion.app import Bastion
from bastion.data.records import DatasetVersionInfo
from bastion.spine import Context
from tests.data.conftest import CSV, SCHEMA, ingest, make_people
from tests.gateway.conftest import breast_cancer_model
from tests.models.conftest import person as model_person
from tests.models.conftest import push

SUBJECT = "ann@example.com"
ROLES = {"dana": "data-steward", "vic": "viewer", "alice": "ml-engineer"}

CUSTOMERS: dict[str, Any] = {
    **SCHEMA,
    "fields": [{**f, "subject": True} if f["name"] == "email" else f for f in SCHEMA["fields"]],
}
TICKETS: dict[str, Any] = {
    "fields": [
        {"name": "ticket", "type": "integer"},
        {"name": "contact", "type": "string", "classification": "confidential", "categories": ["PII"],
         "subject": True},
        {"name": "topic", "type": "string"},
    ],
    "transforms": [{"field": "contact", "op": "encrypt"}],
}  # fmt: skip
TICKETS_CSV = (
    "ticket,contact,topic\n1,ann@example.com,billing\n2,bob@example.org,login\n3,ann@example.com,refund\n"
)
SECOND = CSV + "4,dee@example.com,4111111111111111,51,10115,,2021-01-01\n"


@dataclass
class Estate:
    customers: list[DatasetVersionInfo]
    tickets: DatasetVersionInfo


@pytest.fixture
def people(system: Bastion) -> dict[str, Context]:
    return make_people(system, ROLES)


@pytest.fixture
def estate(system: Bastion, people: dict[str, Context]) -> Estate:
    dana = people["dana"]
    system.datasets.create(dana, "customers", CUSTOMERS, purposes=["analytics"], region="eu-west-1")
    system.datasets.create(dana, "tickets", TICKETS, purposes=["analytics"], region="eu-west-1")
    customers = [
        ingest(system, dana, "customers", CSV.encode()),
        ingest(system, dana, "customers", SECOND.encode()),
    ]
    tickets = ingest(system, dana, "tickets", TICKETS_CSV.encode())
    alice = model_person("alice")
    system.models.create(alice, "churn", classification="internal")
    push(system, alice, "churn", breast_cancer_model(), "model.joblib", chunk=65536)
    system.models.record_provenance(
        alice, "churn", 1, {"datasets": [{"name": "customers", "sha256": customers[1].sha256}]}
    )
    return Estate(customers, tickets)

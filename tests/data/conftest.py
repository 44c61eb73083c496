"""A customer dataset, the people who touch it, and a writer for upload files."""

from __future__ import annotations

import io
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.data.records import DatasetVersionInfo
from bastion.spine import Context, Principal, PrincipalType

ROLES = {"dana": "data-steward", "eli": "ml-engineer", "vic": "viewer"}
CLEARANCE = {"clearance": "restricted"}

SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "customer_id", "type": "integer", "classification": "internal"},
        {"name": "email", "type": "string", "classification": "confidential", "categories": ["PII"]},
        {"name": "card", "type": "string", "classification": "restricted", "categories": ["PCI"],
         "purposes": ["billing"]},
        {"name": "age", "type": "integer", "minimum": 0, "maximum": 130, "classification": "internal"},
        {"name": "zip", "type": "string", "classification": "internal"},
        {"name": "note", "type": "string", "required": False, "classification": "internal"},
        {"name": "signup", "type": "date", "classification": "internal"},
    ],
    "transforms": [
        {"field": "email", "op": "pseudonymise"},
        {"field": "card", "op": "mask", "keep": 4},
        {"field": "note", "op": "redact", "on": "export"},
    ],
}  # fmt: skip

CSV = (
    "customer_id,email,card,age,zip,note,signup\n"
    "1,ann@example.com,4111111111111111,34,10115,call me at +1 212 555 0100,2024-01-02\n"
    "2,bob@example.org,5500005555555559,45,10117,,2023-11-30\n"
    '3,cy@example.net,340000000000009,29,10119,=HYPERLINK("http://evil"),2022-05-06\n'
)


def person(name: str) -> Context:
    principal = Principal(f"user:{name}", PrincipalType.USER, "api_key", MappingProxyType(CLEARANCE))
    return Context(principal, purpose="analytics")


def make_people(system: Bastion, roles: dict[str, str]) -> dict[str, Context]:
    """Principals cleared for restricted data, each with its role; their request contexts."""
    ops = operator_context()
    for name, role in roles.items():
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", role)
    return {name: person(name) for name in roles}


@pytest.fixture
def people(system: Bastion) -> dict[str, Context]:
    return make_people(system, ROLES)


@pytest.fixture
def customers(system: Bastion, people: dict[str, Context]) -> str:
    system.datasets.create(
        people["dana"],
        "customers",
        SCHEMA,
        purposes=["analytics", "billing"],
        region="eu-west-1",
        retention_days=365,
    )
    return "customers"


def ingest(
    system: Bastion, context: Context, name: str, data: bytes, filename: str = "upload.csv"
) -> DatasetVersionInfo:
    source = io.BytesIO(data)
    with system.data_ingest.receive(context, name, filename) as upload:
        while block := source.read(1000):
            upload.write(block)
        return system.data_ingest.accept(context, upload)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path

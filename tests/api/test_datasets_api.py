"""Datasets over HTTP: streamed upload, problem documents for every refusal, export for a declared purpose,
re-identification and the PII engine — authenticated, authorized, audited."""

from __future__ import annotations

import csv
import io
import pickle
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from tests.data.conftest import CLEARANCE, CSV, ROLES, SCHEMA


@pytest.fixture
def tokens(system: Bastion) -> dict[str, str]:
    ops = operator_context()
    keys = {}
    for name, role in ROLES.items():
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", role)
        keys[name] = system.identity.create_api_key(ops, f"user:{name}").token
    return keys


def auth(token: str, purpose: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {token}"}
    if purpose:
        headers["x-bastion-purpose"] = purpose
    return headers


def chunks(data: bytes, size: int = 64) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def dataset(client: TestClient, tokens: dict[str, str]) -> str:
    body = {
        "name": "customers",
        "schema": SCHEMA,
        "purposes": ["analytics", "billing"],
        "region": "eu-west-1",
    }
    response = client.post("/v1/datasets", json=body, headers=auth(tokens["dana"]))
    assert response.status_code == 201, response.text
    assert response.json()["classification"] == "restricted" and response.json()["schema"]["fields"]
    return "customers"


def upload(
    client: TestClient, token: str, data: bytes, filename: str = "upload.csv"
) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/v1/datasets/customers/versions",
        params={"filename": filename},
        content=chunks(data),
        headers=auth(token),
    )
    return response.status_code, response.json()


def test_upload_export_reidentify(client: TestClient, tokens: dict[str, str], dataset: str) -> None:
    status, version = upload(client, tokens["eli"], CSV.encode())
    assert status == 201 and version["rows"] == 3 and version["version"] == 1
    exported = client.get(
        "/v1/datasets/customers/versions/1/export", headers=auth(tokens["eli"], "analytics")
    )
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert "card" not in rows[0] and rows[0]["email"].startswith("ps_")
    assert exported.headers["x-bastion-dropped-fields"] == "card"
    token = rows[0]["email"]
    denied = client.post("/v1/datasets/customers/reidentify", json={"field": "email", "token": token},
                         headers=auth(tokens["eli"]))  # fmt: skip
    assert denied.status_code == 403
    allowed = client.post("/v1/datasets/customers/reidentify", json={"field": "email", "token": token},
                          headers=auth(tokens["dana"]))  # fmt: skip
    assert allowed.json() == {"value": "ann@example.com"}
    detail = client.get("/v1/datasets/customers", headers=auth(tokens["vic"])).json()
    assert [v["version"] for v in detail["versions"]] == [1]


def test_refusals_are_problems(
    client: TestClient, system: Bastion, tokens: dict[str, str], dataset: str
) -> None:
    status, problem = upload(client, tokens["eli"], pickle.dumps({"x": 1}, protocol=4))
    assert status == 422 and problem["code"] == "data.rejected" and problem["reason"] == "data.pickle"
    status, problem = upload(client, tokens["eli"], CSV.replace(",34,", ",old,").encode())
    assert status == 422 and problem["reason"] == "data.schema_violation"
    assert any("age" in p for p in problem["problems"])  # type: ignore[union-attr]
    assert upload(client, tokens["vic"], CSV.encode())[0] == 403
    anonymous = client.post("/v1/datasets/customers/versions", params={"filename": "a.csv"}, content=b"x")
    assert anonymous.status_code == 401
    system.data_ingest._max_bytes = 50
    big = client.post(
        "/v1/datasets/customers/versions",
        params={"filename": "a.csv"},
        content=CSV.encode(),
        headers=auth(tokens["eli"]),
    )
    assert big.status_code == 413 and big.json()["code"] == "data.too_large"
    no_purpose = client.get("/v1/datasets/customers/versions/1/export", headers=auth(tokens["eli"]))
    assert no_purpose.status_code == 400 and "purpose" in no_purpose.json()["detail"]
    quarantine = client.get("/v1/datasets/customers/quarantine", headers=auth(tokens["dana"])).json()
    assert [q["reason"] for q in quarantine] == ["data.pickle", "data.schema_violation"]
    bad_schema = client.post(
        "/v1/datasets",
        json={"name": "x", "schema": {"fields": []}, "purposes": ["a"], "region": "eu"},
        headers=auth(tokens["dana"]),
    )
    assert bad_schema.status_code == 400 and "schema" in bad_schema.json()["detail"]


def test_pii_analyze(client: TestClient, tokens: dict[str, str]) -> None:
    text = "Zoë's card is 4111 1111 1111 1111, mail zoe@example.com"
    response = client.post("/v1/pii/analyze", json={"text": text}, headers=auth(tokens["eli"]))
    assert response.status_code == 200
    found = [(r["entity_type"], text[r["start"] : r["end"]]) for r in response.json()["results"]]
    assert found == [("CREDIT_CARD", "4111 1111 1111 1111"), ("EMAIL_ADDRESS", "zoe@example.com")]
    assert response.json()["ner"].startswith("off")
    assert client.post("/v1/pii/analyze", json={"text": text}, headers=auth(tokens["vic"])).status_code == 403

"""Data protection II over HTTP: a DP query (and a malformed one), labels from a bound labeller (and a
refused outsider), a data-subject erasure, retention's dry run and lineage — each a thin adapter."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.spine import Resource
from tests.data.conftest import CLEARANCE, CSV, ingest
from tests.governance.conftest import CUSTOMERS, SUBJECT


def key(system: Bastion, name: str, role: str, on: Resource | None = None) -> dict[str, str]:
    ops = operator_context()
    system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
    system.identity.assign_role(ops, f"user:{name}", role, resource=on)
    return {"authorization": f"Bearer {system.identity.create_api_key(ops, f'user:{name}').token}"}


def test_data_protection_routes(client: TestClient, system: Bastion) -> None:
    schema = {**CUSTOMERS, "privacy_budget": {"epsilon": 1.0}}
    ops = operator_context()
    system.datasets.create(ops, "customers", schema, purposes=["analytics"], region="eu-west-1")
    ingest(system, ops, "customers", CSV.encode())
    analyst = key(system, "ann", "analyst")
    steward = key(system, "stu", "data-steward")
    labeller = key(system, "lou", "labeller", Resource("dataset", "customers"))

    queries = "/v1/datasets/customers/queries"
    answer = client.post(queries, json={"kind": "count", "epsilon": 0.5}, headers=analyst)
    assert answer.status_code == 200 and answer.json()["spent"]["epsilon"] == 0.5
    bad = client.post(queries, json={"kind": "sum", "epsilon": 0.5}, headers=analyst)
    assert bad.status_code == 422
    over = client.post(queries, json={"kind": "count", "epsilon": 0.6}, headers=analyst)
    assert over.status_code == 403 and over.json()["code"] == "privacy.budget_exhausted"
    spent = client.get("/v1/datasets/customers/privacy-spend", headers=steward).json()
    assert spent["user:ann"]["queries"] == 1

    assert client.put("/v1/datasets/customers/labels", json={"1": "vip"}, headers=labeller).json() == {
        "changed": 1
    }
    assert client.put("/v1/datasets/customers/labels", json={"1": "x"}, headers=analyst).status_code == 403
    report = client.post("/v1/datasets/customers/labels/report", headers=steward)
    assert report.status_code == 200 and report.json()[0]["labeller"] == "user:lou"

    assert client.post("/v1/retention/run?dry_run=true", headers=steward).json() == []
    erasure = {"kind": "erasure", "subject": SUBJECT}
    made = client.post("/v1/subject-requests", json=erasure, headers=steward)
    assert made.status_code == 201 and made.json()["status"] == "open"
    done = client.post(f"/v1/subject-requests/{made.json()['id']}/run", headers=steward).json()
    assert done["request"]["result"]["versions_replaced"] == ["dataset:customers@1"]
    impact = client.get("/v1/lineage/datasets/customers/versions/1", headers=steward).json()
    edge = {"from": "dataset:customers@1", "to": "dataset:customers@2", "relation": "erasure"}
    assert impact["edges"] == [edge]
    assert client.post("/v1/subject-requests", json=erasure, headers=analyst).status_code == 403

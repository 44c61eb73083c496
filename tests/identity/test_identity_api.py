"""Identity administration over HTTP: a security-admin manages principals, roles, groups and keys; a
reader is refused (403, audited); malformed bodies are 422 problems; the new token appears only once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def admin(system: Bastion) -> str:
    ops = operator_context()
    system.identity.create_principal(ops, "service:idp-admin")
    system.identity.assign_role(ops, "service:idp-admin", "security-admin")
    return system.identity.create_api_key(ops, "service:idp-admin").token


def test_administration_round_trip(client: TestClient, system: Bastion, admin: str) -> None:
    created = client.post(
        "/v1/principals", json={"id": "service:etl", "attributes": {"team": "data"}}, headers=auth(admin)
    )
    assert created.status_code == 201
    assert created.json()["attributes"] == {"team": "data"}
    assigned = client.post(
        "/v1/principals/service:etl/roles",
        json={"role": "auditor", "resource_type": "audit_log", "resource_id": "main"},
        headers=auth(admin),
    )
    assert assigned.status_code == 201
    [binding] = client.get("/v1/principals/service:etl/roles", headers=auth(admin)).json()
    assert (binding["id"], binding["role"], binding["resource_type"], binding["resource_id"]) == (
        assigned.json()["binding_id"],
        "auditor",
        "audit_log",
        "main",
    )
    issued = client.post(
        "/v1/principals/service:etl/apikeys", json={"expires_in_days": 7}, headers=auth(admin)
    )
    assert issued.status_code == 201
    token, key_id = issued.json()["token"], issued.json()["key_id"]
    assert client.get("/v1/audit/events", headers=auth(token)).status_code == 200
    rotated = client.post(f"/v1/apikeys/{key_id}/rotate", json={"overlap_minutes": 0}, headers=auth(admin))
    assert rotated.status_code == 201
    assert client.delete(f"/v1/apikeys/{rotated.json()['key_id']}", headers=auth(admin)).status_code == 204
    assert client.post("/v1/tokens/revoke", json={"jti": "some-jti"}, headers=auth(admin)).status_code == 204
    disabled = client.post("/v1/principals/service:etl/disable", headers=auth(admin))
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    ids = [p["id"] for p in client.get("/v1/principals", headers=auth(admin)).json()]
    assert "service:etl" in ids
    creations = system.audit.search(operator_context(), AuditFilter(action="identity.apikeys.create")).events
    assert all(token not in str(event.details) for event in creations)


def test_a_reader_cannot_administer(client: TestClient, system: Bastion) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, "service:reader")
    system.identity.assign_role(ops, "service:reader", "auditor")
    token = system.identity.create_api_key(ops, "service:reader").token
    for method, path, body in (
        ("post", "/v1/principals", {"id": "service:x"}),
        ("post", "/v1/principals/service:reader/apikeys", {}),
        ("post", "/v1/principals/service:reader/roles", {"role": "security-admin"}),
        ("post", "/v1/policies", {"text": ""}),
        ("post", "/v1/policies/0/activate", {}),
    ):
        response = getattr(client, method)(path, json=body, headers=auth(token))
        assert response.status_code == 403
        assert response.json()["code"] == "policy.denied"
    assert client.post("/v1/principals", json={"id": "service:x"}).status_code == 401  # anonymous


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/principals", {"id": "Not Valid"}, 400),
        ("/v1/principals", {"nope": 1}, 422),
        ("/v1/principals/service:ghost/apikeys", {}, 404),
        ("/v1/principals/service:idp-admin/apikeys", {"expires_in_days": 9999}, 422),
        ("/v1/principals/service:etl/roles", {"role": "*"}, 400),
        ("/v1/principals/service:etl/roles", {"role": "auditor", "resource_id": "main"}, 400),
        ("/v1/principals/service:ghost/roles", {"role": "auditor"}, 404),
        ("/v1/principals/service:idp-admin/roles", {"role": "auditor"}, 403),  # not to itself
        ("/v1/groups/service:idp-admin/members", {"member_id": "service:idp-admin"}, 400),  # not a group
        ("/v1/policies", {"text": "permit(principal, action, resource);"}, 400),  # no @id
        ("/v1/policies", {"text": '@id("x") permit(principal, action, resourc);'}, 400),
        ("/v1/policies/99/activate", {}, 404),
    ],
)
def test_bad_requests_are_problems(
    client: TestClient, admin: str, path: str, body: dict[str, object], status: int
) -> None:
    response = client.post(path, json=body, headers=auth(admin))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"

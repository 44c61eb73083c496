"""Identity administration over HTTP: an administrator granted identity.* manages principals and keys; a
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
    for action, resource_type in (
        ("identity.principals.create", "principal"),
        ("identity.principals.read", "principal"),
        ("identity.grants.create", "principal"),
        ("identity.apikeys.create", "principal"),
        ("identity.apikeys.read", "api_key"),
        ("identity.apikeys.revoke", "api_key"),
        ("identity.tokens.revoke", "token"),
        ("identity.principals.disable", "principal"),
    ):
        system.identity.grant(ops, "service:idp-admin", action, resource_type)
    return system.identity.create_api_key(ops, "service:idp-admin").token


def test_administration_round_trip(client: TestClient, system: Bastion, admin: str) -> None:
    created = client.post(
        "/v1/principals", json={"id": "service:etl", "attributes": {"team": "data"}}, headers=auth(admin)
    )
    assert created.status_code == 201
    assert created.json()["attributes"] == {"team": "data"}
    assert (
        client.post(
            "/v1/principals/service:etl/grants",
            json={"action": "audit.read", "resource_type": "audit_log"},
            headers=auth(admin),
        ).status_code
        == 201
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
    system.identity.grant(ops, "service:reader", "audit.read", "audit_log")
    token = system.identity.create_api_key(ops, "service:reader").token
    for method, path, body in (
        ("post", "/v1/principals", {"id": "service:x"}),
        ("post", "/v1/principals/service:reader/apikeys", {}),
        (
            "post",
            "/v1/principals/service:reader/grants",
            {"action": "identity.grants.create", "resource_type": "principal"},
        ),
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
        ("/v1/principals/service:idp-admin/grants", {"action": "*", "resource_type": "key"}, 400),
    ],
)
def test_bad_requests_are_problems(
    client: TestClient, admin: str, path: str, body: dict[str, object], status: int
) -> None:
    response = client.post(path, json=body, headers=auth(admin))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"

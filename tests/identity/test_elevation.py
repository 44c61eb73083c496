"""Just-in-time elevation and break-glass, over the real HTTP API: ask, approve (never one's own), expire,
revoke early; every step audited; the emergency credential pages the SIEM on every use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.audit.export.formats import cef, severity
from bastion.core.clock import FrozenClock
from bastion.spine import Context, Principal, PrincipalType, Resource

DATASETS = Resource("key", "datasets")


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def people(system: Bastion) -> dict[str, str]:
    """dev asks (and is itself an approver — which must not let it approve its own request); boss approves;
    viewer may only look."""
    ops = operator_context()
    tokens = {}
    for name, roles in (("dev", ("approver",)), ("boss", ("approver",)), ("viewer", ("viewer",))):
        system.identity.create_principal(ops, f"user:{name}")
        for role in roles:
            system.identity.assign_role(ops, f"user:{name}", role)
        tokens[name] = system.identity.create_api_key(ops, f"user:{name}").token
    return tokens


def may_encrypt(system: Bastion, resource: Resource = DATASETS) -> bool:
    dev = Principal(id="user:dev", type=PrincipalType.USER, auth_method="api_key")
    return system.uow._authorizer.authorize(Context(dev), "keys.encrypt", resource).allowed


def ask(client: TestClient, token: str, **overrides: object) -> dict[str, object]:
    body = {
        "role": "operator",
        "reason": "INC-4711: re-encrypt the datasets key",
        "duration_minutes": 30,
        "resource_type": "key",
        "resource_id": "datasets",
        **overrides,
    }
    response = client.post("/v1/elevations", json=body, headers=auth(token))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_request_approve_expire(
    client: TestClient, system: Bastion, people: dict[str, str], clock: FrozenClock
) -> None:
    elevation = ask(client, people["dev"])
    assert elevation["state"] == "pending"
    assert not may_encrypt(system)

    own = client.post(f"/v1/elevations/{elevation['id']}/approve", headers=auth(people["dev"]))
    assert own.status_code == 403  # self-approval, even for an approver
    refused = system.audit.search(
        operator_context(), AuditFilter(action="identity.elevations.approve")
    ).events
    assert refused[-1].outcome == "denied"
    assert "default:forbid:self-approval" in refused[-1].policy_ids
    assert (
        client.post(f"/v1/elevations/{elevation['id']}/approve", headers=auth(people["viewer"])).status_code
        == 403
    )

    approved = client.post(f"/v1/elevations/{elevation['id']}/approve", headers=auth(people["boss"]))
    assert approved.status_code == 200
    assert (approved.json()["state"], approved.json()["decided_by"]) == ("approved", "user:boss")
    clock.advance(timedelta(seconds=3))  # past the role cache
    assert may_encrypt(system)
    assert not may_encrypt(system, Resource("key", "other"))  # the scope holds
    again = client.post(f"/v1/elevations/{elevation['id']}/approve", headers=auth(people["boss"]))
    assert again.status_code == 409

    clock.advance(timedelta(minutes=30))
    assert not may_encrypt(system)  # expired by itself
    listed = client.get("/v1/elevations", params={"state": "expired"}, headers=auth(people["boss"])).json()
    assert [item["id"] for item in listed] == [elevation["id"]]
    steps = [
        (e.action, e.outcome, e.actor_id)
        for e in system.audit.search(operator_context(), AuditFilter(resource_type="elevation")).events
        if e.action != "identity.elevations.read"
    ]
    assert steps == [
        ("identity.elevations.approve", "denied", "user:dev"),
        ("identity.elevations.approve", "denied", "user:viewer"),
        ("identity.elevations.approve", "allowed", "user:boss"),
        ("identity.elevations.approve", "error", "user:boss"),
    ]


def test_revoked_early_and_denied(
    client: TestClient, system: Bastion, people: dict[str, str], clock: FrozenClock
) -> None:
    elevation = ask(client, people["dev"])
    client.post(f"/v1/elevations/{elevation['id']}/approve", headers=auth(people["boss"]))
    clock.advance(timedelta(seconds=3))
    assert may_encrypt(system)
    revoked = client.post(f"/v1/elevations/{elevation['id']}/revoke", headers=auth(people["dev"]))
    assert (revoked.status_code, revoked.json()["state"]) == (200, "revoked")
    clock.advance(timedelta(seconds=3))
    assert not may_encrypt(system)

    second = ask(client, people["dev"])
    denied = client.post(f"/v1/elevations/{second['id']}/deny", headers=auth(people["boss"]))
    assert denied.json()["state"] == "denied"
    assert (
        client.post(f"/v1/elevations/{second['id']}/approve", headers=auth(people["boss"])).status_code == 409
    )
    # someone else's elevation is not the viewer's to revoke
    third = ask(client, people["dev"])
    assert (
        client.post(f"/v1/elevations/{third['id']}/revoke", headers=auth(people["viewer"])).status_code == 403
    )


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"role": "god"}, 400),
        ({"duration_minutes": 241}, 400),  # beyond elevation_max_minutes (240 by default)
        ({"reason": ""}, 422),
        ({"resource_type": "widget"}, 400),
        ({"resource_type": None, "resource_id": "datasets"}, 400),
    ],
)
def test_bad_elevation_requests(
    client: TestClient, people: dict[str, str], overrides: dict[str, object], status: int
) -> None:
    body = {"role": "operator", "reason": "r", "duration_minutes": 30, **overrides}
    response = client.post("/v1/elevations", json=body, headers=auth(people["dev"]))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_approving_a_missing_elevation_is_404(client: TestClient, people: dict[str, str]) -> None:
    response = client.post("/v1/elevations/elevation:nope/approve", headers=auth(people["boss"]))
    assert response.status_code == 404


def test_break_glass_pages_on_every_use(client: TestClient, system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    first = system.identity.create_break_glass(ops)
    sealed = system.identity.create_break_glass(ops)  # re-sealing revokes the earlier credential
    clock.advance(timedelta(seconds=3))
    assert client.get("/v1/principals", headers=auth(first.token)).status_code == 401
    assert client.get("/v1/principals", headers=auth(sealed.token)).status_code == 200
    assert client.get("/v1/principals", headers=auth(sealed.token)).status_code == 200

    used = system.audit.search(ops, AuditFilter(action="identity.breakglass.used")).events
    assert len(used) == 2
    assert all(e.details["severity"] == "critical" and e.details["path"] == "/v1/principals" for e in used)
    [listing, _] = system.audit.search(
        ops, AuditFilter(action="identity.principals.read", actor="user:break-glass")
    ).events
    assert listing.details["break_glass"] is True  # what was done with it is critical too
    event = used[0].as_json()
    assert severity(event) == 2
    assert "|10|" in cef(event)
    # a plain admin action stays at the ordinary level
    ordinary = system.audit.search(ops, AuditFilter(action="identity.breakglass.create")).events[0]
    assert severity(ordinary.as_json()) == 6

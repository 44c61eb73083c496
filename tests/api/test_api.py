"""The HTTP surface: probes, problem+json for every error, authentication refusals audited, no leaks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bastion.app import Bastion
from bastion.store.tables import AuditEvent

PROBLEM = "application/problem+json"


def audit_rows(bastion: Bastion) -> list[AuditEvent]:
    with bastion.database.transaction() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def assert_problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:bastion:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert "Traceback" not in response.text  # type: ignore[attr-defined]
    return body


def test_healthz_and_security_headers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-request-id"]
    assert "server" not in response.headers


def test_readyz_checks_database_and_schema(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "schema": "ok"}}


def test_readyz_is_503_when_schema_is_missing(tmp_path: object) -> None:
    from bastion.app import build  # noqa: PLC0415
    from bastion.core.settings import load_settings  # noqa: PLC0415

    settings = load_settings(overrides={"state_dir": tmp_path})
    system = build(settings)  # never migrated
    try:
        with TestClient(system.api()) as unmigrated:
            body = assert_problem(unmigrated.get("/readyz"), 503, "store.unavailable")
            assert "bastion init" in str(body["remedy"])
    finally:
        system.close()


def test_openapi_describes_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/audit/events" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/nope"), 404, "http.404")
    assert_problem(client.post("/healthz"), 405, "http.405")


def test_anonymous_audit_read_is_401_and_audited(client: TestClient, bastion: Bastion) -> None:
    response = client.get("/v1/audit/events", headers={"user-agent": "curl/8"})
    assert_problem(response, 401, "auth.required")
    assert response.headers["www-authenticate"].startswith("Bearer")
    [event] = audit_rows(bastion)
    assert (event.action, event.outcome, event.actor_id) == ("audit.read", "denied", "anonymous")
    assert event.request_id == response.headers["x-request-id"]
    assert event.user_agent == "curl/8"
    assert event.source_address == "testclient"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
        "Bearer",
        "Bearer   ",
        "Bearer a b",
        "Basic YWRtaW46aHVudGVyMg==",
        "bearer " + "A" * 9000,
        "bst_abc_" + "x" * 40,
    ],
)
def test_unverifiable_credentials_are_401_never_5xx_and_audited(
    client: TestClient, bastion: Bastion, header: str
) -> None:
    response = client.get("/v1/audit/events", headers={"authorization": header})
    body = assert_problem(response, 401, "auth.invalid_credentials")
    assert body["detail"] == "The credentials could not be verified."
    [event] = [row for row in audit_rows(bastion) if row.action == "auth.authenticate"]
    assert (event.action, event.outcome, event.resource_id) == (
        "auth.authenticate",
        "denied",
        "/v1/audit/events",
    )
    secret_part = header.rsplit(" ", maxsplit=1)[-1]
    if len(secret_part) > 8:
        assert secret_part not in response.text
        assert secret_part not in str(event.details) + event.reason


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=5000", "outcome=maybe", "since=yesterday", "after_seq=-1"]
)
def test_invalid_queries_are_422_problems(client: TestClient, query: str) -> None:
    body = assert_problem(client.get(f"/v1/audit/events?{query}"), 422, "request.invalid")
    assert body["errors"]
    value = query.split("=")[1]
    assert all(value not in str(error["msg"]) for error in body["errors"])  # type: ignore[attr-defined]


def test_invalid_purpose_header_is_400(client: TestClient) -> None:
    response = client.get("/v1/audit/events", headers={"x-bastion-purpose": "DROP TABLE; --"})
    assert_problem(response, 400, "request.invalid")


def test_request_id_is_echoed_when_safe_and_replaced_when_not(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"x-request-id": "trace-123"}).headers["x-request-id"] == "trace-123"
    )
    hostile = client.get("/healthz", headers={"x-request-id": "a\tb; injected=1"}).headers["x-request-id"]
    assert hostile != "a\tb; injected=1"
    assert len(hostile) == 36


def test_unexpected_exception_is_an_opaque_500_with_request_id(bastion: Bastion) -> None:
    app = bastion.api()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("password=hunter2 in the database layer")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom", headers={"x-request-id": "req-500"})
    body = assert_problem(response, 500, "internal.error")
    assert body["request_id"] == "req-500"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"

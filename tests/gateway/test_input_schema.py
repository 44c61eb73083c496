"""A version's input schema declared at registration: checked when declared, frozen at approval, and
enforced by the gateway on every request (ranges and types per feature), over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.core.errors import Conflict, PermissionDenied
from bastion.models.gates import GatePolicy
from bastion.models.input_schema import InvalidInputSchema
from tests.gateway.conftest import auth
from tests.models.conftest import person, push

FEATURES = 30
# Feature 0 (mean radius) must lie in [5, 30]; every feature is a number; exactly 30 of them.
ROW: dict[str, Any] = {
    "type": "array",
    "prefixItems": [{"type": "number", "minimum": 5, "maximum": 30}] + [{"type": "number"}] * (FEATURES - 1),
    "items": False,
    "minItems": FEATURES,
}


def to_production(system: Bastion, name: str, model_bytes: bytes, schema: dict[str, Any] | None) -> None:
    alice = person("alice")
    system.models.create(alice, name, classification="internal")
    push(system, alice, name, model_bytes, "model.joblib", chunk=65536)
    if schema is not None:
        system.models.declare_input_schema(alice, name, 1, schema)
    system.models.set_gate(person("sam"), name, GatePolicy(approvals=1, require_provenance=False))
    system.models.approve(person("bob"), name, 1)
    system.models.promote(alice, name, 1, "approved")
    system.models.promote(alice, name, 1, "production")


def call(client: TestClient, token: str, name: str, rows: list[list[Any]]) -> tuple[int, dict[str, Any]]:
    response = client.post(
        f"/v1/models/{name}/predict",
        content=json.dumps({"inputs": rows}),
        headers={**auth(token), "content-type": "application/json"},
    )
    return response.status_code, response.json()


def test_the_declared_schema_is_enforced_per_feature(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    model_bytes: bytes,
    samples: list[list[float]],
) -> None:
    to_production(system, "ranged", model_bytes, ROW)
    assert system.models.version(person("alice"), "ranged", 1).input_schema == ROW
    status, body = call(gateway_client, served["app"], "ranged", samples[:2])
    assert status == 200, body
    too_large = [[500.0, *samples[0][1:]]]
    status, body = call(gateway_client, served["app"], "ranged", too_large)
    assert status == 422 and body["code"] == "predict.invalid_input"
    assert any(p.startswith("inputs/0/0:") and "maximum" in p for p in body["problems"])
    assert body["schema"]["properties"]["inputs"]["items"] == ROW  # the client is told what is accepted
    status, body = call(gateway_client, served["app"], "ranged", [[10.0, "x", *samples[0][2:]]])
    assert status == 422 and any(p.startswith("inputs/0/1:") for p in body["problems"])
    # The same model without a declared schema takes the out-of-range row: the schema is what refused it.
    assert call(gateway_client, served["app"], "cancer", too_large)[0] == 200


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ([1, 2], "JSON object"),
        ({"type": "object"}, '"type" must be "array"'),
        ({"type": "array", "minItems": -1}, "not valid JSON Schema"),
        ({"type": "array", "description": "x" * 70_000}, "larger than"),
    ],
)
def test_a_bad_schema_is_refused_and_nothing_is_recorded(
    system: Bastion, served: dict[str, str], model_bytes: bytes, schema: Any, reason: str
) -> None:
    alice = person("alice")
    system.models.create(alice, "bad", classification="internal")
    push(system, alice, "bad", model_bytes, "model.joblib", chunk=65536)
    with pytest.raises(InvalidInputSchema, match=reason):
        system.models.declare_input_schema(alice, "bad", 1, schema)
    assert system.models.version(alice, "bad", 1).input_schema is None


def test_the_schema_is_declared_once_before_approval_by_an_author(
    system: Bastion, served: dict[str, str], model_bytes: bytes
) -> None:
    alice = person("alice")
    system.models.create(alice, "late", classification="internal")
    push(system, alice, "late", model_bytes, "model.joblib", chunk=65536)
    with pytest.raises(PermissionDenied):  # an inference client may not describe what a model accepts
        system.models.declare_input_schema(person("app"), "late", 1, ROW)
    system.models.declare_input_schema(alice, "late", 1, ROW)
    with pytest.raises(Conflict, match="already declares"):
        system.models.declare_input_schema(alice, "late", 1, {"type": "array"})
    to_production(system, "later", model_bytes, None)
    with pytest.raises(Conflict, match="before approval"):  # approvers reviewed a version without one
        system.models.declare_input_schema(alice, "later", 1, ROW)


def test_declaring_over_http(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], model_bytes: bytes
) -> None:
    alice = person("alice")
    system.models.create(alice, "wire", classification="internal")
    push(system, alice, "wire", model_bytes, "model.joblib", chunk=65536)
    key = system.identity.create_api_key(operator_context(), "user:alice").token
    url = "/v1/models/wire/versions/1/input-schema"
    bad = gateway_client.put(url, json={"type": "object"}, headers=auth(key))
    assert bad.status_code == 400 and bad.json()["code"] == "models.invalid_input_schema"
    assert gateway_client.put(url, json=ROW, headers=auth(served["app"])).status_code == 403
    good = gateway_client.put(url, json=ROW, headers=auth(key))
    assert good.status_code == 200 and good.json()["input_schema"] == ROW

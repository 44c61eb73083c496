"""The registry over HTTP: streamed uploads scanned before acceptance, problem documents for every refusal,
verified downloads whose OMS signature checks out with the reference implementation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context
from tests.models.conftest import CLEARANCE, ROLES, clean_model, malicious_model

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture
def tokens(system: Bastion) -> dict[str, str]:
    ops = operator_context()
    keys = {}
    for name, role in {**ROLES, "vera": "viewer"}.items():
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", role)
        keys[name] = system.identity.create_api_key(ops, f"user:{name}").token
    return keys


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def model(client: TestClient, tokens: dict[str, str]) -> str:
    body = {"name": "fraud", "description": "card fraud", "classification": "confidential"}
    response = client.post("/v1/models", json=body, headers=auth(tokens["alice"]))
    assert response.status_code == 201, response.text
    return "fraud"


def upload(client: TestClient, token: str, data: bytes, filename: str = "model.pkl") -> dict[str, object]:
    response = client.post(
        "/v1/models/fraud/versions",
        params={"filename": filename},
        content=chunks(data),  # a chunked body: the server must stream it
        headers={**auth(token), "content-type": "application/octet-stream"},
    )
    result: dict[str, object] = {"status": response.status_code, **response.json()}
    return result


def test_push_and_verified_download(
    client: TestClient, tokens: dict[str, str], model: str, tmp_path: Path
) -> None:
    data = clean_model() * 50
    pushed = upload(client, tokens["alice"], data)
    assert pushed["status"] == 201 and pushed["stage"] == "validated" and pushed["scan_verdict"] == "clean"
    assert pushed["sha256"] == hashlib.sha256(data).hexdigest()

    response = client.get("/v1/models/fraud/versions/1/artifact", headers=auth(tokens["alice"]))
    assert response.status_code == 200 and response.content == data
    assert response.headers["x-bastion-sha256"] == pushed["sha256"]
    (tmp_path / "model.pkl").write_bytes(response.content)
    signature = client.get("/v1/models/fraud/versions/1/signature", headers=auth(tokens["vera"]))
    (tmp_path / "model.sig").write_bytes(signature.content)
    public = client.get("/v1/registry/public-key", headers=auth(tokens["vera"]))
    (tmp_path / "pub.pem").write_bytes(public.content)
    verify = [MODEL_SIGNING, "verify", "key", "--signature", str(tmp_path / "model.sig")]
    verify += ["--public_key", str(tmp_path / "pub.pem"), str(tmp_path / "model.pkl")]
    result = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The viewer may look, not take.
    denied = client.get("/v1/models/fraud/versions/1/artifact", headers=auth(tokens["vera"]))
    assert denied.status_code == 403


def test_rejections_are_problems(
    client: TestClient, system: Bastion, tokens: dict[str, str], model: str
) -> None:
    rejected = upload(client, tokens["alice"], malicious_model())
    assert rejected["status"] == 422 and rejected["code"] == "models.artifact_rejected"
    assert rejected["scan"]["verdict"] == "unsafe"  # type: ignore[index]
    unscannable = upload(client, tokens["alice"], b"\x00\x00 raw bytes of no known format")
    assert unscannable["status"] == 422 and unscannable["code"] == "models.artifact_unscannable"
    assert upload(client, tokens["vera"], clean_model())["status"] == 403
    anonymous = client.post("/v1/models/fraud/versions", params={"filename": "m.pkl"}, content=b"x")
    assert anonymous.status_code == 401
    assert upload(client, tokens["alice"], clean_model(), "../../etc/passwd")["status"] == 400
    system.intake._max_bytes = 64
    too_big = client.post(
        "/v1/models/fraud/versions",
        params={"filename": "m.pkl"},
        content=clean_model() * 10,
        headers=auth(tokens["alice"]),
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "models.artifact_too_large"
    missing = client.post(
        "/v1/models/nope/versions", params={"filename": "m.pkl"}, content=b"x", headers=auth(tokens["alice"])
    )
    assert missing.status_code == 404
    versions = client.get("/v1/models/fraud/versions", headers=auth(tokens["alice"])).json()
    assert [v["stage"] for v in versions] == ["quarantined", "quarantined"]
    assert client.get("/v1/models/fraud/versions/0", headers=auth(tokens["alice"])).status_code == 422


def test_review_promote_retire_over_http(client: TestClient, tokens: dict[str, str], model: str) -> None:
    alice, bob, sam = (auth(tokens[n]) for n in ("alice", "bob", "sam"))
    upload(client, tokens["alice"], clean_model())
    gate = {"approvals": 1, "require_provenance": False, "metrics": {"recall": {"min": 0.8}}}
    assert client.put("/v1/models/fraud/gate", json=gate, headers=alice).status_code == 403
    assert client.put("/v1/models/fraud/gate", json=gate, headers=sam).status_code == 200
    failed = client.post("/v1/models/fraud/versions/1/promotions", json={"stage": "approved"}, headers=alice)
    assert failed.status_code == 409 and failed.json()["code"] == "models.gate_failed"
    assert {c["name"] for c in failed.json()["gate"]["checks"] if not c["passed"]} == {
        "metric:recall",
        "approvals",
    }
    evaluation = {"dataset": {"name": "holdout.csv", "sha256": "ef" * 32}, "metrics": {"recall": 0.91}}
    assert (
        client.post("/v1/models/fraud/versions/1/evaluations", json=evaluation, headers=alice).status_code
        == 200
    )
    assert client.post("/v1/models/fraud/versions/1/approvals", json={}, headers=alice).status_code == 403
    assert client.post("/v1/models/fraud/versions/1/approvals", json={}, headers=bob).status_code == 200
    approved = client.post(
        "/v1/models/fraud/versions/1/promotions", json={"stage": "approved"}, headers=alice
    )
    assert approved.status_code == 200 and approved.json()["gate_result"]["passed"] is True
    live = client.post("/v1/models/fraud/versions/1/promotions", json={"stage": "production"}, headers=alice)
    assert live.json()["stage"] == "production"
    retired = client.post(
        "/v1/models/fraud/versions/1/retirement", json={"reason": "replaced", "archive": False}, headers=sam
    )
    assert retired.status_code == 200 and retired.json()["shredded"] is True
    gone = client.get("/v1/models/fraud/versions/1/artifact", headers=alice)
    assert gone.status_code == 422 and gone.json()["code"] == "models.load_refused"

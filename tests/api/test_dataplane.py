"""Predictions are answered before FastAPI's layers: with the same headers, request id, problem documents and
validation as every other route, and anything the matcher leaves goes to FastAPI as before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer

from bastion.api.dataplane import prediction_route
from bastion.app import Bastion
from tests.gateway.conftest import auth, breast_cancer_model, serve_cancer


@pytest.fixture
def served_client(system: Bastion) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client of an API serving ``cancer``, and the API keys of its callers."""
    keys = serve_cancer(system, breast_cancer_model())
    with TestClient(system.api(), raise_server_exceptions=False) as client:
        yield client, keys


def test_the_matcher() -> None:
    def scope(path: str, method: str = "POST") -> dict[str, object]:
        return {"type": "http", "method": method, "path": path}

    assert prediction_route(scope("/v1/models/cancer/predict")) == ("cancer", None)
    assert prediction_route(scope("/v1/models/cancer/versions/3/predict")) == ("cancer", 3)
    for left in (
        scope("/v1/models/cancer/predict", "GET"),
        scope("/v1/models/cancer/versions/0/predict"),  # FastAPI's validation answers these
        scope("/v1/models/cancer/versions/4294967296/predict"),
        scope("/v1/models/cancer/versions/x/predict"),
        scope("/v1/models/" + "m" * 129 + "/predict"),
        scope("/v1/models/a/b/predict"),
        scope("/v1/models/cancer/predict/"),
    ):
        assert prediction_route(left) is None, left
    assert prediction_route({"type": "websocket", "path": "/v1/models/cancer/predict"}) is None


def test_predictions_carry_the_headers_of_every_route(
    served_client: tuple[TestClient, dict[str, str]],
) -> None:
    gateway_client, served = served_client
    samples = [[float(v) for v in load_breast_cancer().data[0]]]
    headers = {**auth(served["app"]), "content-type": "application/json", "x-request-id": "req-dataplane-1"}
    response = gateway_client.post(
        "/v1/models/cancer/predict", content=json.dumps({"inputs": samples}), headers=headers
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-dataplane-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    refused = gateway_client.post("/v1/models/cancer/predict", content=b"{}", headers={"x-request-id": "r-2"})
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["request_id"] == "r-2" and refused.headers["x-request-id"] == "r-2"
    assert refused.headers["www-authenticate"].startswith("Bearer")


def test_what_the_matcher_leaves_is_answered_by_fastapi(
    served_client: tuple[TestClient, dict[str, str]],
) -> None:
    gateway_client, served = served_client
    headers = {**auth(served["app"]), "content-type": "application/json"}
    for version in ("0", "4294967296", "x"):
        response = gateway_client.post(
            f"/v1/models/cancer/versions/{version}/predict", content=b"{}", headers=headers
        )
        assert response.status_code == 422, version
        assert response.json()["code"] == "request.invalid"
    response = gateway_client.get("/v1/models/cancer/predict", headers=headers)
    assert response.status_code == 405 and response.headers["x-content-type-options"] == "nosniff"
    spec = gateway_client.get("/openapi.json").json()
    assert "/v1/models/{name}/predict" in spec["paths"]

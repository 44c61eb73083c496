"""A real scikit-learn model taken through the registry to production, and the principals who call it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import joblib
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from bastion.app import Bastion, build
from bastion.app.container import operator_context
from bastion.core.clock import FrozenClock
from bastion.core.settings import load_settings
from bastion.models.gates import GatePolicy
from tests.models.conftest import CLEARANCE, ROLES, person, push

CLIENTS = {"app": "inference-client", "vic": "viewer", "sam": "security-admin"}


def breast_cancer_model() -> bytes:
    data = load_breast_cancer()
    model = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def model_bytes() -> bytes:
    return breast_cancer_model()


@pytest.fixture(scope="session")
def samples() -> list[list[float]]:
    data = load_breast_cancer()
    return [list(map(float, row)) for row in data.data[:3]]


@pytest.fixture
def served(system: Bastion, model_bytes: bytes) -> dict[str, str]:
    """``cancer`` in production; API keys of an inference client, a viewer and a security admin."""
    return serve_cancer(system, model_bytes)


def serve_cancer(system: Bastion, model_bytes: bytes) -> dict[str, str]:
    ops = operator_context()
    for name, role in {**ROLES, **CLIENTS}.items():
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", role)
    alice, bob, sam = person("alice"), person("bob"), person("sam")
    system.models.create(alice, "cancer", classification="internal")
    push(system, alice, "cancer", model_bytes, "model.joblib", chunk=65536)
    system.models.set_gate(sam, "cancer", GatePolicy(approvals=1, require_provenance=False))
    system.models.approve(bob, "cancer", 1)
    system.models.promote(alice, "cancer", 1, "approved")
    system.models.promote(alice, "cancer", 1, "production")
    return {name: system.identity.create_api_key(ops, f"user:{name}").token for name in CLIENTS}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def gateway_client(system: Bastion, served: dict[str, str]) -> TestClient:
    with TestClient(system.api(), raise_server_exceptions=False) as client:
        yield client  # type: ignore[misc]


def rebuilt(tmp_path: Path, database_url: str, clock: FrozenClock, **overrides: Any) -> Bastion:
    """A second system over the state of the ``system`` fixture, with settings of its own."""
    base = {"state_dir": tmp_path / "state", "database_url": database_url}
    return build(load_settings(overrides={**base, **overrides}), clock=clock)

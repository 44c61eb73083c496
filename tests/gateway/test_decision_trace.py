"""High-risk models keep a decision trace in each prediction's audit event — input, version, output and
per-feature contributions — and the contributions are the model's own arithmetic: bias plus contributions
gives back the linear model's decision function, or the tree/forest's probability of the predicted class."""

from __future__ import annotations

import io
import json
from typing import Any

import joblib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.gateway.policy import ServingPolicy
from tests.gateway.conftest import auth
from tests.gateway.test_input_schema import to_production
from tests.models.conftest import person


def trace(client: TestClient, system: Bastion, token: str, name: str, rows: list[list[float]]) -> Any:
    response = client.post(
        f"/v1/models/{name}/predict",
        content=json.dumps({"inputs": rows}),
        headers={**auth(token), "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [event] = system.audit.search(operator_context(), AuditFilter(action="models.predict")).events
    return event.details["trace"]  # type: ignore[attr-defined]


def dumped(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "estimator",
    [
        DecisionTreeClassifier(max_depth=5, random_state=0),
        RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0),
    ],
    ids=["tree", "forest"],
)
def test_tree_contributions_add_up_to_the_predicted_probability(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], estimator: Any
) -> None:
    data = load_breast_cancer()
    model = estimator.fit(data.data, data.target)
    to_production(system, "trees", dumped(model), None)
    system.gateway.set_policy(person("sam"), "trees", ServingPolicy(high_risk=True))
    rows = [list(map(float, row)) for row in data.data[[0, 19, 100]]]
    recorded = trace(gateway_client, system, served["app"], "trees", rows)
    assert recorded["inputs"] == rows and len(recorded["outputs"]) == 3
    contributions = recorded["contributions"]
    assert contributions["method"] == "tree-path"
    probabilities = model.predict_proba(np.asarray(rows))
    for values, bias, p in zip(contributions["values"], contributions["bias"], probabilities, strict=True):
        assert len(values) == 30
        assert bias + sum(values) == pytest.approx(p.max(), abs=1e-9)
    # The features the tree actually split on carry the weight; one it never uses carries none.
    trees = getattr(model, "estimators_", [model])
    unused = set(range(30)) - {int(f) for tree in trees for f in tree.tree_.feature}
    for feature in unused:
        assert all(values[feature] == 0 for values in contributions["values"])


def test_linear_contributions_add_up_to_the_decision_function(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(high_risk=True))
    recorded = trace(gateway_client, system, served["app"], "cancer", samples)
    data = load_breast_cancer()
    reference = LogisticRegression(max_iter=5000).fit(data.data, data.target)  # as the fixture trains it
    decision = reference.decision_function(np.asarray(samples))
    contributions = recorded["contributions"]
    assert contributions["method"] == "linear"
    for values, bias, expected in zip(contributions["values"], contributions["bias"], decision, strict=True):
        assert bias + sum(values) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_no_trace_unless_the_policy_marks_the_model_high_risk(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    response = gateway_client.post(
        "/v1/models/cancer/predict",
        content=json.dumps({"inputs": samples[:1]}),
        headers={**auth(served["app"]), "content-type": "application/json"},
    )
    assert response.status_code == 200
    [event] = system.audit.search(operator_context(), AuditFilter(action="models.predict")).events
    assert "trace" not in event.details and "inputs" not in event.details  # type: ignore[attr-defined]

"""The serving flavors beyond scikit-learn, end to end over HTTP in isolated workers: ONNX graphs run by
onnxruntime (probabilities as a tensor or as ZipMap dictionaries), and custom models through a Python entry
point named by the serving policy, loaded from the operator's model-code directory. Then the scikit-learn
flavor's labels: read off the probabilities where scikit-learn defines them so, always what ``predict``
answers."""

from __future__ import annotations

import json
import struct
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from bastion.app import Bastion
from bastion.core.clock import FrozenClock
from bastion.gateway.flavors import SklearnModel
from bastion.gateway.policy import ServingPolicy
from tests.gateway.conftest import auth, rebuilt
from tests.gateway.test_input_schema import to_production
from tests.models.conftest import person

DATA = load_breast_cancer()
REFERENCE = LogisticRegression(max_iter=5000).fit(DATA.data, DATA.target)
ROWS = [list(map(float, row)) for row in DATA.data[[0, 19, 40, 100]]]


def onnx_classifier(zipmap: bool) -> bytes:
    """The reference logistic regression as an ONNX graph: logits -> softmax -> (label, probabilities)."""
    weights = np.stack([np.zeros(30), REFERENCE.coef_[0]], axis=1).astype(np.float32)  # [30, 2]
    bias = np.array([0.0, REFERENCE.intercept_[0]], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
    ]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None])]
    opsets = [helper.make_opsetid("", 17)]
    if zipmap:
        nodes.append(
            helper.make_node(
                "ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]
            )
        )
        map_type = helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
        )
        outputs.append(helper.make_value_info("probabilities", helper.make_sequence_type_proto(map_type)))
        opsets.append(helper.make_opsetid("ai.onnx.ml", 3))
    else:
        nodes.append(helper.make_node("Identity", ["scores"], ["probabilities"]))
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]))
    graph = helper.make_graph(
        nodes,
        "breast-cancer",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 30])],
        outputs,
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def predict(client: TestClient, token: str, name: str, rows: list[list[Any]]) -> tuple[int, dict[str, Any]]:
    response = client.post(
        f"/v1/models/{name}/predict",
        content=json.dumps({"inputs": rows}),
        headers={**auth(token), "content-type": "application/json"},
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("zipmap", [False, True], ids=["tensor", "zipmap"])
def test_onnx_models_are_served_by_onnxruntime(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], zipmap: bool
) -> None:
    to_production(system, "onnx-cancer", onnx_classifier(zipmap), None)
    assert system.models.version(person("alice"), "onnx-cancer", 1).format == "onnx"
    status, body = predict(gateway_client, served["app"], "onnx-cancer", ROWS)
    assert status == 200, body
    expected = REFERENCE.predict_proba(np.asarray(ROWS))
    assert [row["label"] for row in body["outputs"]] == REFERENCE.predict(np.asarray(ROWS)).tolist()
    for row, reference in zip(body["outputs"], expected, strict=True):
        assert set(row["probabilities"]) == {"0", "1"}
        assert row["probabilities"]["1"] == pytest.approx(reference[1], abs=2e-4)  # float32, rounded to 4
    # The derived input schema comes from the graph: 30 features.
    status, body = predict(gateway_client, served["app"], "onnx-cancer", [ROWS[0][:29]])
    assert status == 422 and body["code"] == "predict.invalid_input"


def test_an_onnx_graph_that_is_not_tabular_is_refused_with_a_reason(
    gateway_client: TestClient, system: Bastion, served: dict[str, str]
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["out"])],
        "vision",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    to_production(system, "vision", model.SerializeToString(), None)
    status, body = predict(gateway_client, served["app"], "vision", ROWS[:1])
    assert status == 422 and body["code"] == "model.flavor_unsupported" and "did not load" in body["detail"]


CUSTOM_MODEL = '''
    """A custom model: logistic regression weights read from a safetensors file, no scikit-learn."""
    import json, math, os, socket, struct

    class Linear:
        classes = ["benign", "malignant"]
        features = 30

        def __init__(self, path):
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
                data = handle.read()
            def tensor(name):
                start, end = header[name]["data_offsets"]
                return list(struct.unpack(f"<{(end - start) // 8}d", data[start:end]))
            self.weights, (self.bias,) = tensor("w"), tensor("b")

        def _p(self, row):
            return 1 / (1 + math.exp(-(sum(w * x for w, x in zip(self.weights, row)) + self.bias)))

        def predict(self, rows):
            return [self.classes[self._p(row) > 0.5] for row in rows]

        def predict_proba(self, rows):
            return [[1 - self._p(row), self._p(row)] for row in rows]

    def build(path):
        return Linear(path)

    def broken(path):
        return object()

    def leaky(path):
        # What a hostile model would try first: the network and the gateway's environment.
        class Probe:
            def predict(self, rows):
                try:
                    socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
                    network = "reachable"
                except OSError:
                    network = "unreachable"
                names = [k for k in os.environ if k.startswith("BASTION_")]
                secrets = sorted(k for k in names if k != "BASTION_WORKER_LIMITS")
                return [f"{network}|{','.join(secrets) or 'none'}" for _ in rows]
        return Probe()
'''


def safetensors(tensors: dict[str, list[float]]) -> bytes:
    header, data, offset = {}, b"", 0
    for name, values in tensors.items():
        header[name] = {
            "dtype": "F64",
            "shape": [len(values)],
            "data_offsets": [offset, offset + 8 * len(values)],
        }
        data += struct.pack(f"<{len(values)}d", *values)
        offset += 8 * len(values)
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


@pytest.fixture
def custom_client(
    system: Bastion, served: dict[str, str], tmp_path: Path, database_url: str, clock: FrozenClock
) -> Iterator[TestClient]:
    """A second Bastion over the same state whose settings name a model-code directory."""
    code = tmp_path / "model-code"
    code.mkdir()
    (code / "custom_model.py").write_text(textwrap.dedent(CUSTOM_MODEL))
    other = rebuilt(tmp_path, database_url, clock, gateway_model_code=[code])
    weights = safetensors({"w": REFERENCE.coef_[0].tolist(), "b": [float(REFERENCE.intercept_[0])]})
    to_production(other, "custom", weights, None)
    with TestClient(other.api(), raise_server_exceptions=False) as client:
        yield client
    other.close()


def test_a_custom_python_model_is_served_through_its_entry_point(
    custom_client: TestClient, system: Bastion, served: dict[str, str]
) -> None:
    status, body = predict(custom_client, served["app"], "custom", ROWS)
    assert status == 422 and body["code"] == "model.flavor_unsupported"  # safetensors alone: no flavor
    system.gateway.set_policy(person("sam"), "custom", ServingPolicy(entrypoint="custom_model:build"))
    custom_client.app.state.services.gateway._models._entries.clear()  # type: ignore[attr-defined]
    status, body = predict(custom_client, served["app"], "custom", ROWS)
    assert status == 200, body
    names = np.array(["benign", "malignant"])
    assert [row["label"] for row in body["outputs"]] == names[REFERENCE.predict(np.asarray(ROWS))].tolist()
    expected = REFERENCE.predict_proba(np.asarray(ROWS))[:, 1]
    for row, p in zip(body["outputs"], expected, strict=True):
        assert row["probabilities"]["malignant"] == pytest.approx(p, abs=1e-4)
    status, body = predict(custom_client, served["app"], "custom", [ROWS[0][:10]])  # features = 30
    assert status == 422


def test_custom_model_code_runs_isolated_and_a_bad_factory_is_refused(
    custom_client: TestClient, system: Bastion, served: dict[str, str]
) -> None:
    gateway = custom_client.app.state.services.gateway  # type: ignore[attr-defined]
    system.gateway.set_policy(person("sam"), "custom", ServingPolicy(entrypoint="custom_model:leaky"))
    gateway._models._entries.clear()
    status, body = predict(custom_client, served["app"], "custom", ROWS[:1])
    assert status == 200, body
    assert body["outputs"][0]["label"] == "unreachable|none"  # no network, no Bastion settings or secrets
    system.gateway.set_policy(person("sam"), "custom", ServingPolicy(entrypoint="custom_model:broken"))
    gateway._models._entries.clear()
    status, body = predict(custom_client, served["app"], "custom", ROWS[:1])
    assert status == 422 and "did not load" in body["detail"]


@pytest.mark.parametrize("entrypoint", ["os.system", "custom_model:build; rm", "../x:y", ":build"])
def test_an_entry_point_must_name_module_and_factory(entrypoint: str) -> None:
    with pytest.raises(ValidationError):
        ServingPolicy(entrypoint=entrypoint)


def served_sklearn(estimator: Any, tmp_path: Path) -> tuple[SklearnModel, list[int]]:
    """The estimator as the worker loads it, and the row count of each call of its ``predict``."""
    joblib.dump(estimator, tmp_path / "model.joblib")
    model = SklearnModel(str(tmp_path / "model.joblib"))
    calls: list[int] = []
    real = model.estimator.predict

    def counted(batch: Any) -> Any:
        calls.append(len(batch))
        return real(batch)

    model.estimator.predict = counted
    return model, calls


IRIS = load_iris()
ARGMAX_MODELS = {
    "logistic-binary": lambda: LogisticRegression(max_iter=5000).fit(DATA.data, DATA.target),
    "logistic-multinomial": lambda: LogisticRegression(max_iter=5000).fit(IRIS.data, IRIS.target),
    "tree": lambda: DecisionTreeClassifier(max_depth=3, random_state=0).fit(IRIS.data, IRIS.target),
    "forest": lambda: RandomForestClassifier(n_estimators=7, max_depth=3, random_state=0).fit(
        DATA.data, DATA.target
    ),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=5, random_state=0).fit(IRIS.data, IRIS.target),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(DATA.data, DATA.target),
}


@pytest.mark.parametrize("kind", list(ARGMAX_MODELS))
def test_labels_are_read_off_the_probabilities_and_equal_predict(kind: str, tmp_path: Path) -> None:
    estimator = ARGMAX_MODELS[kind]()
    rows = (DATA if estimator.n_features_in_ == DATA.data.shape[1] else IRIS).data
    expected = estimator.predict(rows).tolist()
    model, calls = served_sklearn(estimator, tmp_path)
    answer = model.predict(rows.tolist(), proba=True, contributions=False)
    assert answer["labels"] == expected
    np.testing.assert_array_equal(answer["probabilities"], estimator.predict_proba(rows))
    # Only the rows whose two most likely classes are (near) tied went to predict; a tree's leaf with
    # equal counts is one.
    assert sum(calls) < len(rows) / 10
    model.predict(rows.tolist(), proba=False, contributions=False)  # no probabilities asked: predict alone
    assert calls[-1] == len(rows)


def test_a_tie_the_argmax_would_break_otherwise_is_answered_by_predict(tmp_path: Path) -> None:
    estimator = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    estimator.coef_, estimator.intercept_ = np.array([[1e-18]]), np.array([0.0])
    rows = [[1.0], [-1.0], [3e17]]  # scores 1e-18 (> 0: class 1), -1e-18 and 0.3
    probabilities = estimator.predict_proba(np.asarray(rows))
    assert probabilities[0, 0] == probabilities[0, 1] == 0.5  # the logistic rounds a positive score to a tie
    assert probabilities[0].argmax() == 0 and estimator.predict(np.asarray(rows))[0] == 1
    model, calls = served_sklearn(estimator, tmp_path)
    answer = model.predict(rows, proba=True, contributions=False)
    assert answer["labels"] == [1, 0, 1]
    assert calls == [2]  # the two tied rows, not the clear one


class _OwnLogistic(LogisticRegression):
    """A subclass is free to predict otherwise: it gets no shortcut."""


@pytest.mark.parametrize(
    "estimator",
    [KNeighborsClassifier(n_neighbors=4), _OwnLogistic(max_iter=5000)],
    ids=["neighbours", "subclass"],
)
def test_other_models_answer_with_their_own_predict(estimator: Any, tmp_path: Path) -> None:
    estimator.fit(DATA.data[:200], DATA.target[:200])
    rows = DATA.data[200:260]
    model, calls = served_sklearn(estimator, tmp_path)
    answer = model.predict(rows.tolist(), proba=True, contributions=False)
    assert calls == [len(rows)]
    assert answer["labels"] == estimator.predict(rows).tolist()

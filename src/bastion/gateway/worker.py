"""A model worker: one process per model version replica, never the gateway's own.

Started as ``python -m bastion.gateway.worker``. Before it reads any model it drops what a model should not
have: its own network namespace (no interfaces but a loopback that is down), a cap on address space and open
files, a CPU-time cap. It then speaks JSON lines on stdin/stdout:

    {"op": "load", "path": ..., "flavor": "sklearn"}   -> {"ok": true, "features": 30, "classes": [...], ...}
    {"op": "predict", "inputs": [[...]], "proba": true, "contributions": false} -> {"ok": true, "labels": ...}

It loads only what the gateway hands it — a version whose signature verified and whose scan was clean,
decrypted into an owner-only workspace — and it imports nothing of Bastion, so a model's code (if a loader
ever ran any) finds no keys, no database handle and no credentials in this process.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import resource
import sys
from typing import Any

CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000


def isolate(memory_bytes: int, cpu_seconds: int, open_files: int) -> dict[str, Any]:
    """Apply the limits; report what the operating system allowed."""
    status: dict[str, Any] = {}
    libc = ctypes.CDLL(None, use_errno=True)
    network = "none"
    if libc.unshare(CLONE_NEWNET) == 0:
        network = "isolated"
    elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        network = "isolated (user namespace)"
    status["network"] = network
    for name, limit, value in (
        ("memory_bytes", resource.RLIMIT_AS, memory_bytes),
        ("cpu_seconds", resource.RLIMIT_CPU, cpu_seconds),
        ("open_files", resource.RLIMIT_NOFILE, open_files),
    ):
        try:
            resource.setrlimit(limit, (value, value))
            status[name] = value
        except (ValueError, OSError):
            status[name] = None
    return status


class Model:
    def __init__(self, path: str, flavor: str) -> None:
        if flavor != "sklearn":
            raise ValueError(f"unsupported flavor {flavor}")
        import joblib  # noqa: PLC0415 - only after isolation

        self.estimator = joblib.load(path)
        self.features = int(getattr(self.estimator, "n_features_in_", 0)) or None
        classes = getattr(self.estimator, "classes_", None)
        self.classes = (
            [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None
        )
        self.proba = hasattr(self.estimator, "predict_proba")

    def describe(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "classes": self.classes,
            "proba": self.proba,
            "kind": type(self.estimator).__name__,
            "contributions": self._explainer() is not None,
        }

    def _explainer(self) -> str | None:
        """How per-feature contributions can be read off this model: a linear model's coefficients, or the
        decision paths of a tree or a forest of trees. Pipelines are not explained (their features are
        transformed ones)."""
        estimator = self.estimator
        if getattr(estimator, "steps", None):
            return None
        if hasattr(estimator, "coef_"):
            return "linear"
        trees = getattr(estimator, "estimators_", None)
        if hasattr(estimator, "tree_") or (
            isinstance(trees, list) and trees and all(hasattr(t, "tree_") for t in trees)
        ):
            return "tree-path"
        return None

    def predict(self, inputs: list[list[Any]], proba: bool, contributions: bool) -> dict[str, Any]:
        import numpy as np  # noqa: PLC0415

        try:
            batch = np.asarray(inputs, dtype=float)
        except ValueError:  # categorical features (a declared schema allows strings): pipelines encode them
            batch = np.asarray(inputs, dtype=object)
        result: dict[str, Any] = {"labels": [_plain(v) for v in self.estimator.predict(batch)]}
        method = self._explainer() if contributions else None
        wanted = self.proba and (proba or method is not None)
        probabilities = self.estimator.predict_proba(batch) if wanted else None
        if proba and probabilities is not None:
            result["probabilities"] = probabilities.tolist()
        if method is not None:
            # The class each row is explained for: the predicted one (regressors: the single output).
            target = probabilities.argmax(axis=1) if probabilities is not None else np.zeros(len(batch), int)
            explain = _linear_contributions if method == "linear" else _tree_contributions
            values, bias = explain(self.estimator, batch, target)
            result["contributions"] = {"method": method, "values": values.tolist(), "bias": bias.tolist()}
        return result


def _linear_contributions(model: Any, batch: Any, target: Any) -> tuple[Any, Any]:
    """coefficient x value per feature, and the intercept: they sum to the decision function (for a binary
    model, of class 1; otherwise of the explained class)."""
    import numpy as np  # noqa: PLC0415

    coef = np.atleast_2d(model.coef_)
    intercept = np.atleast_1d(getattr(model, "intercept_", np.zeros(len(coef))))
    rows = np.zeros(len(batch), int) if len(coef) == 1 else target
    return batch * coef[rows], intercept[rows]


def _tree_contributions(model: Any, batch: Any, target: Any) -> tuple[Any, Any]:
    """Decision-path contributions (Saabas): along each row's path, the change in the explained class's
    value at every split goes to the split's feature. Bias (the root's value) plus the contributions is the
    model's output for that class; a forest averages its trees."""
    import numpy as np  # noqa: PLC0415

    trees = [model] if hasattr(model, "tree_") else list(model.estimators_)
    values = np.zeros(batch.shape, dtype=float)
    bias = np.zeros(len(batch), dtype=float)
    for tree in trees:
        structure = tree.tree_
        node_values = structure.value[:, 0, :].astype(float)
        if hasattr(tree, "classes_"):  # class counts or fractions: as probabilities
            node_values = node_values / node_values.sum(axis=1, keepdims=True)
        paths = tree.decision_path(batch)
        for row in range(len(batch)):
            # Root first: node ids grow down a path.
            nodes = paths.indices[paths.indptr[row] : paths.indptr[row + 1]]
            column = target[row] if node_values.shape[1] > 1 else 0
            bias[row] += node_values[nodes[0], column]
            for parent, child in itertools.pairwise(nodes):
                feature = structure.feature[parent]
                values[row, feature] += node_values[child, column] - node_values[parent, column]
    return values / len(trees), bias / len(trees)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def main() -> None:
    limits = json.loads(os.environ.get("BASTION_WORKER_LIMITS", "{}"))
    status = isolate(
        int(limits.get("memory_bytes", 2 * 1024**3)),
        int(limits.get("cpu_seconds", 3600)),
        int(limits.get("open_files", 64)),
    )
    out = sys.stdout
    out.write(json.dumps({"ok": True, "hello": status}) + "\n")
    out.flush()
    model: Model | None = None
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("op") == "load":
                model = Model(request["path"], request.get("flavor", "sklearn"))
                reply: dict[str, Any] = {"ok": True, **model.describe()}
            elif request.get("op") == "predict" and model is not None:
                reply = {"ok": True, **model.predict(request["inputs"], bool(request.get("proba")),
                                                     bool(request.get("contributions")))}  # fmt: skip
            else:
                reply = {"ok": False, "error": "unknown operation or no model loaded"}
        except Exception as error:  # noqa: BLE001 - reported to the gateway, which decides
            reply = {"ok": False, "error": type(error).__name__}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

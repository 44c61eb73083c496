"""Serving flavors: how a worker loads a model version and scores rows. Imported by the worker process only
(after its isolation is in place) and importing nothing of Bastion.

- ``sklearn``: a scikit-learn estimator or pipeline saved with joblib (clean scan: allowlisted globals only);
  per-feature contributions for linear models and for trees and forests.
- ``onnx``: an ONNX graph run by onnxruntime on the CPU, one thread: a single tabular input ``[batch,
  features]``; outputs either (labels, probabilities) as skl2onnx writes classifiers — probabilities as a
  tensor or as ZipMap dictionaries — or one tensor of scores (argmax is the label) or of values (a regressor).
- ``python``: a custom model. The serving policy names an entry point ``package.module:factory`` from code the
  operator installed (site-packages, or a directory in the ``gateway_model_code`` setting); the worker calls
  ``factory(path)`` with the decrypted artifact's path and serves what it returns::

      class MyModel:
          classes: list[str] | None          # optional: the class of each probability column
          features: int | None               # optional: the row length the gateway enforces
          def predict(self, rows: list[list[Any]]) -> list[Any]: ...                 # one label per row
          def predict_proba(self, rows: list[list[Any]]) -> list[list[float]]: ...   # optional

  The artifact is scanned like any other (a safe format such as safetensors, or accepted by policy), and the
  code runs inside the same isolated worker as every other flavor: no network, capped memory, CPU time and
  files, no Bastion secrets in reach.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from typing import Any

ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class Model:
    """What every flavor offers the worker."""

    features: int | None = None
    classes: list[Any] | None = None
    proba: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "classes": self.classes,
            "proba": self.proba,
            "kind": type(self).__name__,
            "contributions": False,
        }

    def predict(self, inputs: list[list[Any]], proba: bool, contributions: bool) -> dict[str, Any]:
        raise NotImplementedError


def load(request: dict[str, Any]) -> Model:
    flavor = request.get("flavor")
    if flavor == "sklearn":
        return SklearnModel(request["path"])
    if flavor == "onnx":
        return OnnxModel(request["path"])
    if flavor == "python":
        return CallableModel(request["path"], request["entrypoint"], request.get("code_paths") or [])
    raise ValueError(f"unsupported flavor {flavor}")


class SklearnModel(Model):
    """A scikit-learn estimator or pipeline saved with joblib (its scan was clean: allowlisted globals)."""

    def __init__(self, path: str) -> None:
        import joblib  # noqa: PLC0415 - only after isolation

        self.estimator = joblib.load(path)
        self.features = int(getattr(self.estimator, "n_features_in_", 0)) or None
        classes = getattr(self.estimator, "classes_", None)
        self.classes = (
            [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None
        )
        self.proba = hasattr(self.estimator, "predict_proba")
        self.label_is_argmax = _label_is_argmax(self.estimator)

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
        method = self._explainer() if contributions else None
        wanted = self.proba and (proba or method is not None)
        probabilities = self.estimator.predict_proba(batch) if wanted else None
        result: dict[str, Any] = {"labels": [_plain(v) for v in self._labels(batch, probabilities)]}
        if proba and probabilities is not None:
            result["probabilities"] = probabilities.tolist()
        if method is not None:
            # The class each row is explained for: the predicted one (regressors: the single output).
            target = probabilities.argmax(axis=1) if probabilities is not None else np.zeros(len(batch), int)
            explain = _linear_contributions if method == "linear" else _tree_contributions
            values, bias = explain(self.estimator, batch, target)
            result["contributions"] = {"method": method, "values": values.tolist(), "bias": bias.tolist()}
        return result

    def _labels(self, batch: Any, probabilities: Any) -> Any:
        """What the model's ``predict`` answers. Where that is by definition the class of the highest
        probability, it is read off the probabilities already computed — one call of the model instead of
        two, half of its share of a request. The map from scores to probabilities keeps their order but may
        round two of them to a tie, where the argmax could differ from ``predict``'s own choice: rows whose
        top two probabilities are that close are asked of ``predict``."""
        import numpy as np  # noqa: PLC0415

        classes = getattr(self.estimator, "classes_", None)
        if (
            not self.label_is_argmax
            or not isinstance(probabilities, np.ndarray)
            or not isinstance(classes, np.ndarray)
            or probabilities.ndim != 2
            or probabilities.shape[1] != len(classes)
            or len(classes) < 2  # a runner-up is needed to tell a tie
        ):
            return self.estimator.predict(batch)
        labels = classes.take(probabilities.argmax(axis=1))
        top_two = np.partition(probabilities, -2, axis=1)[:, -2:]
        close = top_two[:, 1] - top_two[:, 0] <= NEAR_TIE
        if close.any():
            labels[close] = self.estimator.predict(batch[close])
        return labels


NEAR_TIE = 1e-9  # far above a probability's rounding (~1e-16), far below a difference that means anything


def _label_is_argmax(estimator: Any) -> bool:
    """Whether scikit-learn defines this model's ``predict`` as the class of the highest ``predict_proba``
    (up to rounding): logistic regression (a logistic or softmax map of the scores ``predict`` compares),
    decision trees (a leaf's class counts, divided by their sum) and forests of them (``predict`` *is* the
    argmax of the averaged probabilities), alone or as a pipeline's last step. Exact types only: a subclass
    may predict otherwise, and so may any other model (an SVM's calibrated probabilities, for one)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: PLC0415
    from sklearn.pipeline import Pipeline  # noqa: PLC0415
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier  # noqa: PLC0415

    if type(estimator) is Pipeline:
        estimator = estimator.steps[-1][1]
    return type(estimator) in {
        LogisticRegression,
        LogisticRegressionCV,
        DecisionTreeClassifier,
        ExtraTreeClassifier,
        RandomForestClassifier,
        ExtraTreesClassifier,
    }


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


class OnnxModel(Model):
    def __init__(self, path: str) -> None:
        import onnxruntime  # noqa: PLC0415 - only after isolation

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise ValueError("only models with one tabular input [batch, features] are served")
        self.input = inputs[0].name
        self.dtype = "float64" if inputs[0].type == "tensor(double)" else "float32"
        width = inputs[0].shape[1]
        self.features = width if isinstance(width, int) and width > 0 else None
        self.outputs = [output.name for output in self.session.get_outputs()]
        self.proba = len(self.outputs) >= 2 or _has_columns(self.session.get_outputs()[0].shape)

    def predict(self, inputs: list[list[Any]], proba: bool, contributions: bool) -> dict[str, Any]:
        import numpy as np  # noqa: PLC0415

        batch = np.asarray(inputs, dtype=self.dtype)
        results = self.session.run(None, {self.input: batch})
        scores: Any = None
        if len(results) >= 2:
            labels = [_plain(v) for v in np.asarray(results[0]).reshape(-1)]
            scores = results[1]
        else:
            values = np.asarray(results[0])
            if values.ndim == 2 and values.shape[1] > 1:
                scores, labels = values, [int(i) for i in values.argmax(axis=1)]
            else:
                labels = [_plain(v) for v in values.reshape(-1)]
        result: dict[str, Any] = {"labels": labels}
        if scores is not None and proba:
            if isinstance(scores, list):  # ZipMap: one {class: probability} per row
                classes = list(scores[0].keys()) if scores else []
                result["classes"] = [_plain(c) for c in classes]
                result["probabilities"] = [[float(row[c]) for c in classes] for row in scores]
            else:
                result["probabilities"] = np.asarray(scores, dtype=float).tolist()
        return result


def _has_columns(shape: list[Any]) -> bool:
    return len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1


class CallableModel(Model):
    def __init__(self, path: str, entrypoint: str, code_paths: list[str]) -> None:
        if not ENTRYPOINT.match(entrypoint):
            raise ValueError("the entry point must read package.module:factory")
        sys.path.extend(code_paths)  # the operator's directories of vetted model code, after site-packages
        module_name, _, factory = entrypoint.partition(":")
        self.model = getattr(importlib.import_module(module_name), factory)(path)
        if not callable(getattr(self.model, "predict", None)):
            raise TypeError("the factory must return an object with predict(rows)")
        features = getattr(self.model, "features", None)
        self.features = features if isinstance(features, int) and features > 0 else None
        classes = getattr(self.model, "classes", None)
        self.classes = list(classes) if classes is not None else None
        self.proba = callable(getattr(self.model, "predict_proba", None))

    def predict(self, inputs: list[list[Any]], proba: bool, contributions: bool) -> dict[str, Any]:
        labels = [_plain(v) for v in self.model.predict(inputs)]
        if len(labels) != len(inputs):
            raise ValueError("predict returned a label count that does not match the rows")
        result: dict[str, Any] = {"labels": labels}
        if proba and self.proba:
            rows = [[float(p) for p in row] for row in self.model.predict_proba(inputs)]
            if len(rows) != len(inputs):
                raise ValueError("predict_proba returned a row count that does not match the rows")
            result["probabilities"] = rows
        return result


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value

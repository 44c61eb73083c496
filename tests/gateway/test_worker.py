"""Scoring several requests in one call of the model (inside the worker): each request's share of the
answer is what it would get alone — labels exactly, probabilities and contributions to the last bits of
floating point —, and a request the model refuses fails only itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from bastion.gateway.flavors import Model, SklearnModel
from bastion.gateway.worker import _line, score, score_together, shares

DATA = load_breast_cancer()
BATCHES = [DATA.data[0:1].tolist(), DATA.data[1:4].tolist(), DATA.data[4:5].tolist(), DATA.data[5:9].tolist()]


@pytest.fixture(params=["linear", "forest"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> SklearnModel:
    if request.param == "linear":
        estimator: Any = LogisticRegression(max_iter=5000)
    else:
        estimator = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)
    joblib.dump(estimator.fit(DATA.data, DATA.target), tmp_path / "model.joblib")
    return SklearnModel(str(tmp_path / "model.joblib"))


@pytest.mark.parametrize("contributions", [False, True])
def test_each_request_gets_what_it_would_get_alone(model: SklearnModel, contributions: bool) -> None:
    together = score_together(model, BATCHES, True, contributions)
    alone = [score(model, rows, True, contributions) for rows in BATCHES]
    assert len(together) == len(BATCHES)
    for shared, single, rows in zip(together, alone, BATCHES, strict=True):
        assert shared["ok"] and single["ok"]
        assert shared["labels"] == single["labels"] and len(shared["labels"]) == len(rows)
        np.testing.assert_allclose(shared["probabilities"], single["probabilities"], rtol=1e-12, atol=1e-15)
        if contributions:
            assert shared["contributions"]["method"] == single["contributions"]["method"]
            for key in ("values", "bias"):
                np.testing.assert_allclose(
                    shared["contributions"][key], single["contributions"][key], atol=1e-12
                )
        else:
            assert "contributions" not in shared


def test_a_request_the_model_refuses_fails_only_itself(model: SklearnModel) -> None:
    short_row = [DATA.data[0][:5].tolist()]  # five features where the model wants thirty
    replies = score_together(model, [BATCHES[0], short_row, BATCHES[1]], False, False)
    assert replies[1] == {"ok": False, "error": "ValueError"}
    assert replies[0] == score(model, BATCHES[0], False, False)
    assert replies[2] == score(model, BATCHES[1], False, False)


class Miscounting(Model):
    """A custom model that answers one label too few when it is given more than one row."""

    classes = ["no", "yes"]

    def predict(self, inputs: list[list[Any]], proba: bool, contributions: bool) -> dict[str, Any]:
        labels = ["yes"] * (len(inputs) - 1 if len(inputs) > 1 else 1)
        return {"labels": labels, "classes": self.classes}


def test_an_answer_for_the_wrong_number_of_rows_is_not_split_but_asked_again_alone() -> None:
    with pytest.raises(ValueError, match="number of rows"):
        shares({"labels": ["a", "b"]}, [1, 2])
    replies = score_together(Miscounting(), [[[1.0]], [[2.0]]], False, False)
    assert replies == [{"ok": True, "labels": ["yes"], "classes": ["no", "yes"]}] * 2


def test_what_is_not_per_row_goes_to_every_share() -> None:
    result = {"labels": [1, 2, 3], "probabilities": [[0.1], [0.2], [0.3]], "classes": ["a"]}
    assert shares(result, [2, 1]) == [
        {"labels": [1, 2], "probabilities": [[0.1], [0.2]], "classes": ["a"]},
        {"labels": [3], "probabilities": [[0.3]], "classes": ["a"]},
    ]


def test_a_reply_is_one_json_line_whatever_a_custom_model_returns() -> None:
    """NumPy values and integer class keys are written as JSON has them; an answer that cannot be written is
    the model's error (the worker goes on), never a broken line."""
    line = _line({"ok": True, "labels": np.array([1, 0]), "probabilities": [{0: np.float32(0.25)}]})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"ok": True, "labels": [1, 0], "probabilities": [{"0": 0.25}]}
    assert json.loads(_line({"ok": True, "labels": [object()]})) == {
        "ok": False,
        "error": "UnserializableOutput",
    }

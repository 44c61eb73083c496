"""Output protection: what leaves the gateway. Probabilities rounded, only the top k classes, or only the
label (each makes model extraction costlier); labels a policy blocks are refused with a reason code."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from bastion.core.errors import BastionError, ExitCode
from bastion.gateway.policy import OutputPolicy


class OutputBlocked(BastionError):
    code = "predict.output_blocked"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Output blocked"


def protect(result: dict[str, Any], classes: list[Any] | None, policy: OutputPolicy) -> list[dict[str, Any]]:
    labels = result["labels"]
    blocked = [str(label) for label in labels if str(label) in policy.blocked_labels]
    if blocked:
        raise OutputBlocked("The model's output was blocked by its serving policy.", reason="label.blocked")
    rows: list[dict[str, Any]] = [{"label": label} for label in labels]
    probabilities = result.get("probabilities")
    if probabilities is None or policy.label_only:
        return rows
    names = [str(c) for c in classes] if classes else [str(i) for i in range(len(probabilities[0]))]
    for row, scores in zip(rows, probabilities, strict=True):
        ranked = sorted(zip(names, scores, strict=True), key=itemgetter(1), reverse=True)  # ties: model order
        if policy.top_k is not None:
            ranked = ranked[: policy.top_k]
        row["probabilities"] = {
            name: (round(score, policy.round) if policy.round is not None else score)
            for name, score in ranked
        }
    return rows

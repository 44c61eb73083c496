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
            "contributions": self._linear() is not None,
        }

    def _linear(self) -> Any:
        """The final linear step (coefficients), when the model has one: per-feature contributions."""
        estimator = self.estimator
        steps = getattr(estimator, "steps", None)
        final = steps[-1][1] if steps else estimator
        return final if hasattr(final, "coef_") and not steps else None

    def predict(self, inputs: list[list[float]], proba: bool, contributions: bool) -> dict[str, Any]:
        import numpy as np  # noqa: PLC0415

        try:
            batch = np.asarray(inputs, dtype=float)
        except (
            ValueError
        ):  # categorical features (a declared schema allows strings): the pipeline encodes them
            batch = np.asarray(inputs, dtype=object)
        result: dict[str, Any] = {"labels": [_plain(v) for v in self.estimator.predict(batch)]}
        if proba and self.proba:
            result["probabilities"] = self.estimator.predict_proba(batch).tolist()
        if contributions:
            linear = self._linear()
            if linear is not None:
                coef = np.atleast_2d(linear.coef_)[0]
                result["contributions"] = (batch * coef).tolist()
        return result


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

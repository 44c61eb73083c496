"""A model worker: one process per model version replica, never the gateway's own.

Started as ``python -m bastion.gateway.worker``. Before it reads any model it drops what a model should not
have: its own network namespace (no interfaces but a loopback that is down), a cap on address space and open
files, a CPU-time cap. It then speaks JSON lines on stdin/stdout:

    {"op": "load", "path": ..., "flavor": "sklearn"|"onnx"|"python", ["entrypoint": "pkg.mod:factory",
     "code_paths": [...]]}                    -> {"ok": true, "features": 30, "classes": [...], ...}
    {"op": "predict", "document": {"inputs": [[...]], ...}, "proba": true, "contributions": false}
                                              -> {"ok": true, "labels": ...}

(``document`` is the prediction request's body, which the gateway validated against the version's input
schema before handing it over.)

It loads only what the gateway hands it — a version whose signature verified and whose scan was clean,
decrypted into an owner-only workspace — and it imports nothing of Bastion but the flavors (which import
nothing of Bastion), so a model's code (a custom model's, or a loader's) finds no keys, no database handle
and no credentials in this process.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from typing import Any

from bastion.gateway.flavors import Model, load

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


def main() -> None:
    limits = json.loads(os.environ.get("BASTION_WORKER_LIMITS", "{}"))
    status = isolate(
        int(limits.get("memory_bytes", 2 * 1024**3)),
        int(limits.get("cpu_seconds", 3600)),
        int(limits.get("open_files", 64)),
    )
    # The protocol keeps stdout to itself: anything else printed there (a model's own print) goes where stderr
    # goes — nowhere — instead of into the answer the gateway reads.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    out.write(json.dumps({"ok": True, "hello": status}) + "\n")
    out.flush()
    model: Model | None = None  # set by "load"
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("op") == "load":
                model = load(request)
                reply: dict[str, Any] = {"ok": True, **model.describe()}
            elif request.get("op") == "predict" and model is not None:
                inputs = request["document"]["inputs"]
                proba, contributions = bool(request.get("proba")), bool(request.get("contributions"))
                reply = {"ok": True, **model.predict(inputs, proba, contributions)}
            else:
                reply = {"ok": False, "error": "unknown operation or no model loaded"}
        except Exception as error:  # noqa: BLE001 - reported to the gateway, which decides
            reply = {"ok": False, "error": type(error).__name__}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

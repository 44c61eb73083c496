"""A model worker: one process per model version replica, never the gateway's own.

Started as ``python -m bastion.gateway.worker``. Before it reads any model it drops what a model should not
have: its own network namespace (no interfaces but a loopback that is down), a cap on address space and open
files, a CPU-time cap. It then speaks JSON lines on stdin/stdout:

    {"op": "load", "path": ..., "flavor": "sklearn"|"onnx"|"python", ["entrypoint": "pkg.mod:factory",
     "code_paths": [...]]}                    -> {"ok": true, "features": 30, "classes": [...], ...}
    {"op": "predict", "document": {"inputs": [[...]], ...}, "proba": true, "contributions": false}
                                              -> {"ok": true, "labels": ...}
    {"op": "predict", "documents": [{"inputs": ...}, ...], "proba": ..., "contributions": ...}
                                              -> {"ok": true, "replies": [{"ok": true, "labels": ...}, ...]}

(``document`` is the prediction request's body, which the gateway validated against the version's input
schema before handing it over.)

It loads only what the gateway hands it — a version whose signature verified and whose scan was clean,
decrypted into an owner-only workspace — and it imports nothing of Bastion but the flavors (which import
nothing of Bastion), so a model's code (a custom model's, or a loader's) finds no keys, no database handle
and no credentials in this process.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import json
import os
import resource
import sys
from typing import Any

import orjson

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
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    out.write(_line({"ok": True, "hello": status}))
    out.flush()
    model: Model | None = None  # set by "load"
    for line in sys.stdin.buffer:
        try:
            request = orjson.loads(line)  # the gateway's parser: the document it validated is the one scored
            if request.get("op") == "load":
                model = load(request)
                # The model and its libraries live as long as the worker: out of the collector's sight, a
                # full collection walks only what scoring allocates, not every object numpy and the
                # model's library made (a pause of tens of milliseconds, a request waiting through it).
                gc.freeze()
                reply: dict[str, Any] = {"ok": True, **model.describe()}
            elif request.get("op") == "predict" and model is not None:
                proba, contributions = bool(request.get("proba")), bool(request.get("contributions"))
                if "documents" in request:
                    batches = [document["inputs"] for document in request["documents"]]
                    reply = {"ok": True, "replies": score_together(model, batches, proba, contributions)}
                else:
                    reply = score(model, request["document"]["inputs"], proba, contributions)
            else:
                reply = {"ok": False, "error": "unknown operation or no model loaded"}
        except Exception as error:  # noqa: BLE001 - reported to the gateway, which decides
            reply = {"ok": False, "error": type(error).__name__}
        out.write(_line(reply))
        out.flush()


_LINE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _line(reply: dict[str, Any]) -> bytes:
    """One reply, one line. A custom model's NumPy values and non-string keys are written as JSON has them;
    an answer that cannot be written at all is the model's error, reported like any other."""
    try:
        return orjson.dumps(reply, option=_LINE)
    except orjson.JSONEncodeError:
        return orjson.dumps({"ok": False, "error": "UnserializableOutput"}, option=_LINE)


def score(model: Model, rows: list[Any], proba: bool, contributions: bool) -> dict[str, Any]:
    try:
        return {"ok": True, **model.predict(rows, proba, contributions)}
    except Exception as error:  # noqa: BLE001 - reported to the gateway, which decides
        return {"ok": False, "error": type(error).__name__}


def score_together(
    model: Model, batches: list[Any], proba: bool, contributions: bool
) -> list[dict[str, Any]]:
    """Several requests' rows in one call of the model, and each request's share of the answer. If that call
    fails, each request is scored by itself: a request the model refuses fails only itself."""
    try:
        counts = [len(rows) for rows in batches]
        whole = model.predict([row for rows in batches for row in rows], proba, contributions)
        return [{"ok": True, **share} for share in shares(whole, counts)]
    except Exception:  # noqa: BLE001 - which request the model refused is found by asking one at a time
        return [score(model, rows, proba, contributions) for rows in batches]


def shares(result: dict[str, Any], counts: list[int]) -> list[dict[str, Any]]:
    """Split an answer for consecutive requests' rows into one answer per request: what is per row (labels,
    probabilities, contributions) is sliced, the rest (the class order of the probabilities) goes to each."""
    rows = {key: result[key] for key in ("labels", "probabilities") if key in result}
    explained = result.get("contributions")
    columns = [*rows.values(), *([explained["values"], explained["bias"]] if explained is not None else [])]
    if any(len(column) != sum(counts) for column in columns):
        raise ValueError("the model answered for a different number of rows")
    answers: list[dict[str, Any]] = []
    start = 0
    for end in itertools.accumulate(counts):
        answer: dict[str, Any] = {**result, **{key: column[start:end] for key, column in rows.items()}}
        if explained is not None:
            values, bias = explained["values"][start:end], explained["bias"][start:end]
            answer["contributions"] = {**explained, "values": values, "bias": bias}
        answers.append(answer)
        start = end
    return answers


if __name__ == "__main__":
    main()

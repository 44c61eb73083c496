"""Gateway overhead: the same scikit-learn model (breast cancer, logistic regression) served
(a) by a bare Starlette app calling it in-process, and (b) through Bastion's full pipeline (API key, Cedar,
rate limit, JSON Schema validation, an isolated worker process, output rounding, audit append, metrics) —
both under uvicorn (uvloop, httptools) over HTTP on loopback, driven by a separate load-generator process.

Reported: the maximum throughput of each and their ratio — measured with wrk (4 keep-alive connections) when
it is installed (``apt-get install wrk``: a load generator in C leaves both servers the CPU a Python one
takes on this two-core machine), else with the Python client —; then, at a fixed rate of half the bare
server's throughput, p50/p99 latency of each and the difference (what the pipeline adds), from the Python
client's open loop (``support/loadgen.py``: HTTP over plain sockets, tens of microseconds per request; each
latency counted from when its request was due, so falling behind is charged; wrk has no fixed-rate mode);
the same with the Redis rate-limit backend.
Every server runs from the start and each measurement is taken in ``GATEWAY_BENCH_ROUNDS`` (3) interleaved
rounds, the servers' order turning each round, since this machine's speed drifts by tens of percent within
minutes: the figures reported are medians over rounds — of each round's ratio to the bare server and of each
round's latency difference from the bare server's in that same round — after every round's own figures.
Run: ``.venv/bin/python -m benchmarks.bench_gateway`` (Redis at BASTION_TEST_REDIS_URL or 127.0.0.1:6379
for the Redis part; ``GATEWAY_BENCH_SECONDS`` per measurement, 8).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SUPPORT = Path(__file__).parent / "support"
SECONDS = float(os.environ.get("GATEWAY_BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("GATEWAY_BENCH_ROUNDS", "3"))
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk_max(url: str, token: str, body: str) -> dict[str, float] | None:
    """Maximum throughput from wrk (None when wrk is not installed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    headers = {"Content-Type": "application/json"}
    if token != "-":  # noqa: S105 - "-" means: no credential
        headers["Authorization"] = f"Bearer {token}"
    script = f"wrk.method = 'POST'\nwrk.body = {json.dumps(body)}\n" + "".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n" for name, value in headers.items()
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        command = [wrk, "-t1", "-c4", f"-d{max(1, round(SECONDS))}s", "-s", handle.name, url]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
    finally:
        os.unlink(handle.name)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", output)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    return {"rps": float(rate[1]), "errors": float(errors[1]) if errors else 0.0}


def max_load(url: str, token: str, body: str) -> dict[str, float]:
    return wrk_max(url, token, body) or load(url, token, body, "max")


def load(url: str, token: str, body: str, mode: str, rate: float = 0) -> dict[str, float]:
    args = [sys.executable, str(SUPPORT / "loadgen.py"), url, token, body, mode, str(SECONDS)]
    if rate:
        args.append(str(rate))
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def bastion_server(state: Path, limiter: str) -> tuple[subprocess.Popen[str], str, str]:
    """A fresh Bastion with the demo model in production and generous limits; (process, url, token)."""
    from bastion.app import build, init_state
    from bastion.app import demo as demo_module
    from bastion.app.container import operator_context
    from bastion.core.settings import load_settings
    from bastion.gateway.policy import ServingPolicy

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BASTION_")},
        "BASTION_STATE_DIR": str(state),
    }
    env |= {"BASTION_GATEWAY_LIMITER": limiter, "BASTION_REDIS_URL": REDIS_URL, "BASTION_DEMO": "false"}
    env["BASTION_LOG_LEVEL"] = "warning"
    settings = load_settings(overrides={"state_dir": state})
    init_state(settings)
    system = build(settings)
    try:
        made = demo_module.set_up(system)
        generous = ServingPolicy(principal_rps=1e5, principal_burst=10**6, model_rps=1e5, model_burst=10**6)
        system.gateway.set_policy(operator_context(), demo_module.MODEL, generous)
    finally:
        system.close()
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("bastion")), "up", "--unsafe-http", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/healthz")
    return process, f"{url}/v1/models/{demo_module.MODEL}/predict", made.token


def main() -> None:
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    body = json.dumps({"inputs": [list(map(float, data.data[0]))]})
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        root = Path(tmp)
        model = root / "model.joblib"
        buffer = io.BytesIO()
        joblib.dump(LogisticRegression(max_iter=5000).fit(data.data, data.target), buffer)
        model.write_bytes(buffer.getvalue())
        port = free_port()
        bare = subprocess.Popen([sys.executable, str(SUPPORT / "bare_server.py"), str(model), str(port)])
        running.callback(stop, bare)
        with contextlib.suppress(RuntimeError):  # the bare app has no health route: any answer will do
            wait_up(f"http://127.0.0.1:{port}/")
        # Every server runs from the start, so each round measures them all within a minute or so.
        servers = {"bare": (f"http://127.0.0.1:{port}/predict", "-")}
        limiters = ["local"]
        try:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
            limiters.append("redis")
        except Exception:  # noqa: BLE001
            print("(Redis not reachable: the Redis run is skipped)")
        for limiter in limiters:
            process, url, token = bastion_server(root / f"state-{limiter}", limiter)
            running.callback(stop, process)
            servers[limiter] = (url, token)
        for url, token in servers.values():
            max_load(url, token, body)  # warm-up (Bastion's first request starts its worker)
        client = "wrk" if shutil.which("wrk") else "the Python client"
        print(f"maximum throughput measured with {client}; {ROUNDS} interleaved rounds of {SECONDS:.0f} s")
        maxima: dict[str, list[float]] = {name: [] for name in servers}
        for round_number in range(1, ROUNDS + 1):
            for name in in_turn(servers, round_number):
                url, token = servers[name]
                maxima[name].append(max_load(url, token, body)["rps"])
            shares = (
                f"{name} {got[-1]:.0f} req/s ({got[-1] / maxima['bare'][-1]:.0%})"
                for name, got in maxima.items()
            )
            print(f"round {round_number} maximum: " + ", ".join(shares))
        rate = statistics.median(maxima["bare"]) / 2
        fixed: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for round_number in range(1, ROUNDS + 1):
            for name in in_turn(servers, round_number):
                url, token = servers[name]
                fixed[name].append(load(url, token, body, "rate", rate))
            figures = (
                f"{name} p50 {got[-1]['p50_ms']:.2f} p99 {got[-1]['p99_ms']:.2f} ms"
                for name, got in fixed.items()
            )
            print(f"round {round_number} at {rate:.0f} req/s: " + "; ".join(figures))
        bare_p50 = statistics.median(result["p50_ms"] for result in fixed["bare"])
        bare_p99 = statistics.median(result["p99_ms"] for result in fixed["bare"])
        print(f"bare Starlette: {statistics.median(maxima['bare']):.0f} req/s max; at {rate:.0f} req/s "
              f"p50 {bare_p50:.2f} ms, p99 {bare_p99:.2f} ms")  # fmt: skip
        for limiter in limiters:
            ratio = statistics.median(m / b for m, b in zip(maxima[limiter], maxima["bare"], strict=True))
            # What the pipeline adds, paired with the bare server's figure of the same round.
            added = {
                q: statistics.median(
                    full[q] - base[q] for full, base in zip(fixed[limiter], fixed["bare"], strict=True)
                )
                for q in ("p50_ms", "p99_ms")
            }
            errors = sum(result["errors"] for result in fixed[limiter])
            print(
                f"Bastion ({limiter} limiter): {statistics.median(maxima[limiter]):.0f} req/s max "
                f"({ratio:.0%} of bare); at {rate:.0f} req/s added p50 {added['p50_ms']:+.2f} ms, "
                f"p99 {added['p99_ms']:+.2f} ms; errors {errors:.0f}"
            )
        warn_if_disturbed(fixed, limiters)


def warn_if_disturbed(fixed: dict[str, list[dict[str, float]]], limiters: list[str]) -> None:
    """The pipeline does all the bare server does and more: a round where the bare server answered slower at
    p50 than every pipeline is one where the machine, not the servers, set the figures."""
    disturbed = [
        str(number)
        for number, base in enumerate(fixed["bare"], start=1)
        if all(base["p50_ms"] > fixed[limiter][number - 1]["p50_ms"] for limiter in limiters)
    ]
    if disturbed:
        print(
            f"warning: in round(s) {', '.join(disturbed)} the bare server was slower at p50 than the full "
            "pipeline — the baseline was disturbed (it fell behind at this rate); the added latencies of "
            "such rounds measure nothing: run again"
        )


def in_turn(servers: dict[str, tuple[str, str]], round_number: int) -> list[str]:
    """The servers in a different order each round, so none is always measured first (or last)."""
    names = list(servers)
    turn = round_number % len(names)
    return names[turn:] + names[:turn]


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    process.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Load generator (a separate process): ``python loadgen.py URL TOKEN BODY_JSON MODE SECONDS [RATE]``.

MODE ``max``: 4 keep-alive clients as fast as they go; prints requests/s. MODE ``rate``: requests started at
a fixed RATE per second (open loop, 8 clients); prints p50/p99 latency in ms and the share of errors."""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

import httpx


def main() -> None:
    url, token, body, mode, seconds = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3].encode(),
        sys.argv[4],
        float(sys.argv[5]),
    )
    headers = {"content-type": "application/json"}
    if token != "-":  # noqa: S105 - "-" means: no credential
        headers["authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    clients = 4 if mode == "max" else 8
    start_at = time.perf_counter()
    counter = [0]

    def run() -> None:
        with httpx.Client(http2=False, timeout=10) as client:
            while True:
                if mode == "rate":
                    with lock:
                        index = counter[0]
                        counter[0] += 1
                    due = start_at + index / rate
                    if due > deadline:
                        return
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                elif time.perf_counter() > deadline:
                    return
                began = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                took = time.perf_counter() - began
                with lock:
                    latencies.append(took)
                    if response.status_code != 200:
                        errors[0] += 1

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start_at
    ordered = sorted(latencies)
    result = {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else None,
        "errors": errors[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Load generator (a separate process): ``python loadgen.py URL TOKEN BODY_JSON MODE SECONDS [RATE]``.

MODE ``max``: 4 keep-alive connections, each sending its next request as soon as the last is answered; prints
requests/s. MODE ``rate``: requests due at a fixed RATE per second (open loop, up to 32 connections); each
latency counts from the moment the request was *due*, so a server that falls behind is charged for the wait
(no coordinated omission); prints p50/p99 in ms and the count of non-200 answers.

It speaks HTTP/1.1 over plain sockets — one thread sends on schedule, one reads every answer through epoll —
so it costs tens of microseconds per request: on a two-core machine a load generator's own CPU is taken
from the servers it measures (an httpx client costs ~10x more, and the server doing more work per request
loses more by it).
"""

from __future__ import annotations

import json
import queue
import selectors
import socket
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit

MAX_CONNECTIONS = 4
RATE_CONNECTIONS = 32


class Answers:
    """Reads every connection's responses (Content-Length framed) and records each one's latency."""

    def __init__(self, connections: list[socket.socket], idle: queue.SimpleQueue[socket.socket]) -> None:
        self._selector = selectors.EpollSelector()
        self._buffers = {sock: bytearray() for sock in connections}
        self._due: dict[socket.socket, float] = {}
        self._idle = idle
        self.latencies: list[float] = []
        self.errors = 0
        self.outstanding = 0
        self._lock = threading.Lock()
        for sock in connections:
            self._selector.register(sock, selectors.EVENT_READ)

    def sent(self, sock: socket.socket, due: float) -> None:
        with self._lock:
            self._due[sock] = due
            self.outstanding += 1

    def run(self, stop: threading.Event) -> None:
        while not (stop.is_set() and self.outstanding == 0):
            for key, _ in self._selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed a connection")
                buffer = self._buffers[sock]
                buffer += chunk
                status = _complete(buffer)
                if status is None:
                    continue
                done = time.perf_counter()
                buffer.clear()
                with self._lock:
                    self.latencies.append(done - self._due.pop(sock))
                    self.errors += status != 200
                    self.outstanding -= 1
                self._idle.put(sock)


def _complete(buffer: bytearray) -> int | None:
    """The status of the response in ``buffer`` once it is whole (the server answers with Content-Length)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower() + b"\r\n"
    at = head.find(b"content-length:")
    if at < 0:
        raise RuntimeError("a response without Content-Length")
    length = int(head[at + 15 : head.find(b"\r\n", at)])
    if len(buffer) < end + 4 + length:
        return None
    return int(buffer[9:12])


def main() -> None:
    url, token, body, mode, seconds = (
        urlsplit(sys.argv[1]),
        sys.argv[2],
        sys.argv[3].encode(),
        sys.argv[4],
        float(sys.argv[5]),
    )
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    headers = [
        f"POST {url.path} HTTP/1.1",
        f"Host: {url.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token != "-":  # noqa: S105 - "-" means: no credential
        headers.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    count = MAX_CONNECTIONS if mode == "max" else RATE_CONNECTIONS
    connections = []
    for _ in range(count):
        sock = socket.create_connection((url.hostname, url.port or 80))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append(sock)
    idle: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
    for sock in connections:
        idle.put(sock)
    answers = Answers(connections, idle)
    stop = threading.Event()
    reader = threading.Thread(target=answers.run, args=(stop,), daemon=True)
    reader.start()
    started = time.perf_counter()
    deadline = started + seconds
    index = 0
    while True:
        if mode == "rate":
            due = started + index / rate
            if due > deadline:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        else:
            due = time.perf_counter()
            if due > deadline:
                break
        sock = idle.get()  # open loop: a request waiting for a connection is late, and its latency shows it
        if mode == "max":
            due = time.perf_counter()
        answers.sent(sock, due)
        sock.sendall(request)
        index += 1
    stop.set()
    reader.join(timeout=60)
    elapsed = time.perf_counter() - started
    ordered = sorted(answers.latencies)
    result = {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else None,
        "errors": answers.errors,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

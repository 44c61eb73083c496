"""Worker processes for one model version: started with the isolation ``worker`` applies, fed one request
at a time each, killed and replaced when they crash or overrun their time. A worker failure is that
request's 503, never the gateway's."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from bastion.core.errors import Unavailable


class WorkerFailed(Unavailable):
    code = "model.worker_failed"
    title = "Model worker failed"
    default_remedy = "Retry; the worker is being replaced."


class WorkersBusy(Unavailable):
    code = "model.busy"
    title = "All model workers are busy"
    default_remedy = "Retry after a moment, or ask for more workers in the model's serving policy."


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 3600
    open_files: int = 64


class Worker:
    def __init__(self, limits: Limits, start_timeout: float = 30) -> None:
        # A minimal environment: nothing of the gateway's (no BASTION_* settings, no secrets) reaches it.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BASTION_WORKER_LIMITS": json.dumps(_fields(limits)),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "HOME": "/nonexistent",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "bastion.gateway.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
        self.isolation = self._read(start_timeout).get("hello", {})

    def call(self, request: dict[str, Any] | bytes, timeout: float) -> dict[str, Any]:
        """One request (a dict, or a JSON line already encoded) and its answer."""
        assert self.process.stdin is not None  # noqa: S101 - created with a pipe
        line = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except OSError:
            self.kill()
            raise WorkerFailed("The model worker stopped.") from None
        return self._read(timeout)

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None  # noqa: S101 - created with a pipe
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            self.kill()
            raise WorkerFailed("The model worker did not answer in time or stopped.")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a dead worker's pipe may fail to flush
                    pipe.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def _fields(limits: Limits) -> dict[str, int]:
    return {
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.cpu_seconds,
        "open_files": limits.open_files,
    }


@dataclass
class WorkerPool:
    """The workers of one version. ``spawn`` (given by the gateway) starts and loads a new one — it verifies
    the version again first, so a replacement loads only what still verifies."""

    version_id: str
    description: dict[str, Any]
    spawn: Any  # Callable[[], Worker]
    config: dict[str, Any] = field(default_factory=dict)  # how it was started: flavor, entry point, workers
    idle: queue.SimpleQueue[Worker] = field(default_factory=queue.SimpleQueue)
    all: list[Worker] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, worker: Worker) -> None:
        with self.lock:
            self.all.append(worker)
        self.idle.put(worker)

    def call(self, request: dict[str, Any] | bytes, timeout: float) -> dict[str, Any]:
        try:
            worker = self.idle.get(timeout=timeout)
        except queue.Empty:
            raise WorkersBusy("Every worker of this model is busy.") from None
        try:
            reply = worker.call(request, timeout)
        except WorkerFailed:
            self._replace(worker)
            raise
        self.idle.put(worker)
        return reply

    def _replace(self, dead: Worker) -> None:
        with self.lock:
            if dead in self.all:
                self.all.remove(dead)

        def restart() -> None:
            try:
                self.add(self.spawn())
            except Exception:  # noqa: BLE001 - the next request reloads the version from scratch
                return

        threading.Thread(target=restart, daemon=True).start()

    def close(self) -> None:
        with self.lock:
            workers, self.all = list(self.all), []
        for worker in workers:
            worker.kill()

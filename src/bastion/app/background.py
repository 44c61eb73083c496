"""Periodic jobs the server runs beside the API (checkpointing now; export and retention later)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicJob:
    """Runs ``job`` every ``interval`` seconds on a thread; once more on ``stop``. Failures are logged, and
    retried next period — a job that fails must never take the server down with it."""

    def __init__(self, name: str, interval: float, job: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval
        self._job = job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"bastion-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._run_once()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._run_once()

    def _run_once(self) -> None:
        try:
            self._job()
        except Exception:
            log.exception("background job %s failed; will retry", self._name)

"""Blocking work off the event loop, with the least overhead per call.

A prediction runs on the event loop, and the few steps of it that may block — loading a serving policy or a
version, starting workers, a refusal's durable audit record, an authentication the cache cannot decide —
run here, one job per step. anyio's ``to_thread`` (Starlette's ``run_in_threadpool``) costs capacity
limiters, run variables and cancel scopes per call; this pool costs one C queue ``put`` and one
``call_soon_threadsafe``. Like ``to_thread``, a job runs to its end even if its caller goes away, and at most
``threads`` jobs run at once (the rest wait their turn in order). The caller's context variables go with the
job; idle threads end. The composition root builds one for the process."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
IDLE_SECONDS = 30.0  # a thread idle this long ends (an application that stops serving keeps none)
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop | None, "asyncio.Future[Any] | None"]
log = logging.getLogger(__name__)


class Offload:
    def __init__(
        self, threads: int = 40, name: str = "bastion-offload", idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self._size, self._name, self._idle = threads, name, idle_seconds
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._free = 0  # threads not running a job minus jobs queued: below zero, jobs wait (under the lock)
        self._lock = threading.Lock()

    async def run(self, function: Callable[[], T]) -> T:
        """``function()`` on one of the pool's threads; its result, or its exception, here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(function, loop, future)
        return await future

    def submit(self, function: Callable[[], None]) -> None:
        """``function()`` on one of the pool's threads, nobody waiting for it (a cache reloaded behind its
        users' backs); what it raises is logged."""
        self._enqueue(function, None, None)

    def _enqueue(
        self,
        function: Callable[[], Any],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[Any] | None,
    ) -> None:
        # The caller's context variables (request id, trace context) go with the job, as with to_thread.
        job = (partial(contextvars.copy_context().run, function), loop, future)
        # A thread more only when no thread is free for the job — calls one after another share one. Put
        # and count together, under the lock an idle thread takes to leave (it stays for a queued job).
        with self._lock:
            self._jobs.put(job)
            self._free -= 1
            if self._free < 0 and len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                thread.start()
                self._threads.append(thread)
                self._free += 1

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:  # an idle thread leaves, unless a job arrived as it gave up waiting
                    if not self._jobs.empty():
                        continue
                    self._free -= 1
                    with contextlib.suppress(ValueError):  # ``close`` may have let it go already
                        self._threads.remove(threading.current_thread())
                    return
            if job is None:
                return
            function, loop, future = job
            result, error = None, None
            try:
                result = function()
            except BaseException as caught:  # noqa: BLE001 - handed to the awaiting caller, who raises it
                error = caught
            with self._lock:  # free again before the caller hears back, so its next job finds this thread
                self._free += 1
            if loop is not None and future is not None:
                loop.call_soon_threadsafe(_settle, future, result, error)
            elif error is not None:
                log.error("a background job failed: %s", type(error).__name__)

    def close(self, timeout: float = 10.0) -> None:
        """Let the threads finish their jobs and stop, waiting up to ``timeout`` for them (so that what the
        owner closes next — the database — is not used by a job still running); jobs queued after this never
        run."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the caller went away (its task was cancelled): nobody is left to tell
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

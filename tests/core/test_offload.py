"""The thread hop of the data plane: results and exceptions come back, the caller's context variables go
with the job, no more than ``threads`` jobs run at once, and a caller that went away harms nobody."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from bastion.core.offload import Offload

REQUEST = contextvars.ContextVar("request", default="none")


def test_results_exceptions_and_context_variables() -> None:
    offload = Offload(threads=2)

    def boom() -> None:
        raise ValueError("from the thread")

    async def main() -> None:
        REQUEST.set("r-1")
        assert await offload.run(lambda: 6 * 7) == 42
        assert await offload.run(REQUEST.get) == "r-1"
        assert await offload.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ValueError, match="from the thread"):
            await offload.run(boom)

    try:
        asyncio.run(main())
    finally:
        offload.close()


def test_at_most_threads_jobs_run_at_once() -> None:
    offload = Offload(threads=3)
    running, peak, lock = [0], [0], threading.Lock()

    def job() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    async def main() -> None:
        await asyncio.gather(*(offload.run(job) for _ in range(12)))

    try:
        asyncio.run(main())
    finally:
        offload.close()
    assert peak[0] == 3


def test_a_cancelled_caller_does_not_break_the_pool() -> None:
    offload = Offload(threads=1)
    release = threading.Event()

    async def main() -> None:
        waiting = asyncio.ensure_future(offload.run(lambda: release.wait(5)))
        await asyncio.sleep(0.01)
        waiting.cancel()
        release.set()  # the job still finishes; its answer has nowhere to go and is dropped
        assert await offload.run(lambda: "next") == "next"

    try:
        asyncio.run(main())
    finally:
        offload.close()


def test_idle_threads_end_and_the_pool_still_serves() -> None:
    offload = Offload(threads=2, name="test-offload-idle", idle_seconds=0.05)

    async def main() -> None:
        assert await asyncio.gather(offload.run(lambda: 1), offload.run(lambda: 2)) == [1, 2]
        started = [t for t in threading.enumerate() if t.name == "test-offload-idle"]
        assert started
        await asyncio.sleep(0.5)
        assert not any(t.is_alive() for t in started)  # idle past their time: gone
        assert await offload.run(lambda: 3) == 3  # and a new one serves the next call

    try:
        asyncio.run(main())
    finally:
        offload.close()


def test_a_thread_is_started_only_when_none_is_free() -> None:
    offload = Offload(threads=8, name="test-offload-reuse")

    def threads() -> int:
        return sum(t.name == "test-offload-reuse" for t in threading.enumerate())

    async def main() -> None:
        for number in range(20):  # one after another: one thread serves them all
            assert await offload.run(lambda number=number: number) == number
        assert threads() == 1
        # Jobs that block together still get threads of their own, up to the limit: four waiting at a
        # barrier for each other finish only if four run at once.
        barrier = threading.Barrier(4, timeout=10)
        assert len(await asyncio.gather(*(offload.run(barrier.wait) for _ in range(4)))) == 4
        assert threads() == 4

    try:
        asyncio.run(main())
    finally:
        offload.close()


def test_submitted_jobs_run_on_a_thread_and_their_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    offload = Offload(threads=2)
    ran = threading.Event()
    where: list[threading.Thread] = []

    def job() -> None:
        where.append(threading.current_thread())
        ran.set()

    def failing() -> None:
        raise ConnectionError("database down")

    try:
        offload.submit(failing)
        offload.submit(job)
        assert ran.wait(10)
        assert where[0] is not threading.current_thread()
        deadline = time.monotonic() + 10
        while "background job failed: ConnectionError" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        offload.close()

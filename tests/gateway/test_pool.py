"""Worker pools on the event loop, with real worker processes running a custom model that misbehaves on
request: callers wait their turn in order or are told the pool is busy; a worker that overruns its time,
whose caller goes away mid-answer, or that dies is killed and replaced; a model's own output to stdout
never reaches the answer; a request larger than a pipe holds is written in pieces."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.gateway.pool import Job, Limits, Worker, WorkerFailed, WorkerPool, WorkersBusy

# rows[0][0] says what the model does: 0 answer, >0 sleep that many seconds first, -1 print to stdout first;
# any row [-2] kills the worker, any row [-3] makes the model raise. The label is how many rows the call held
# (x 1000, plus the row's second value as a tag, when it has one).
MODEL = """
import os
import sys
import time


class Moody:
    features = None

    def predict(self, rows):
        mood = rows[0][0]
        if mood > 0:
            time.sleep(mood)
        if mood == -1:
            print("debug output a model should not send", flush=True)
            sys.stdout.write("{\\"ok\\": true, \\"labels\\": [\\"forged\\"]}\\n")
            sys.stdout.flush()
        if any(row[0] == -2 for row in rows):
            os._exit(3)
        if any(row[0] == -3 for row in rows):
            raise ValueError("refused")
        return [len(rows) * 1000 + row[1] if len(row) > 1 else len(rows) for row in rows]


def build(path):
    return Moody()
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "moody_model.py").write_text(textwrap.dedent(MODEL))
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"unused")
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(Limits())
        load = {"op": "load", "flavor": "python", "path": str(artifact), "entrypoint": "moody_model:build"}
        reply = worker.call({**load, "code_paths": [str(code)]}, timeout=60)
        assert reply["ok"], reply
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def job(*rows: list[float]) -> Job:
    return Job(b'{"inputs":%s}' % str([list(row) for row in rows]).encode(), False, False)


def pool_of(spawn: Callable[[], Worker], workers: int = 1) -> WorkerPool:
    pool = WorkerPool("v1", {}, spawn)
    for _ in range(workers):
        pool.add(spawn())
    return pool


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_answers_come_back_in_order_and_callers_wait_their_turn(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)

    async def scenario() -> list[Any]:
        calls = [pool.call(job([0.3]), 5), pool.call(job([0], [0]), 5), pool.call(job([0], [0], [0]), 5)]
        return await asyncio.gather(*calls)

    replies = asyncio.run(scenario())
    assert [reply["labels"] for reply in replies] == [[1], [2, 2], [3, 3, 3]]
    pool.close()


def test_a_caller_that_cannot_get_a_worker_in_time_is_told_the_pool_is_busy(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)

    async def scenario() -> tuple[Any, ...]:
        slow = asyncio.ensure_future(pool.call(job([1.0]), 5))
        await asyncio.sleep(0.1)  # the slow request holds the only worker
        with pytest.raises(WorkersBusy):
            await pool.call(job([0]), 0.2)
        return (await slow, await pool.call(job([0]), 5))  # the worker went back to the pool

    slow, after = asyncio.run(scenario())
    assert slow["labels"] == [1] and after["labels"] == [1]
    assert len(pool.all) == 1
    pool.close()


def test_a_worker_that_overruns_its_time_is_killed_and_replaced(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    with pytest.raises(WorkerFailed, match="in time"):
        asyncio.run(pool.call(job([30]), 0.5))
    wait_for(lambda: not first.alive)
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(job([0]), 5))["labels"] == [1]
    pool.close()


def test_a_caller_that_goes_away_mid_answer_retires_its_worker(spawn: Callable[[], Worker]) -> None:
    """The worker would answer later, into the next caller's request: it is replaced instead."""
    pool = pool_of(spawn)
    [first] = pool.all

    async def scenario() -> None:
        task = asyncio.ensure_future(pool.call(job([0.5]), 5))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    wait_for(lambda: not first.alive)
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(job([0], [0]), 5))["labels"] == [2, 2]
    pool.close()


def test_a_dead_worker_fails_its_request_and_is_replaced(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    first.process.kill()
    first.process.wait()
    with pytest.raises(WorkerFailed, match="stopped"):
        asyncio.run(pool.call(job([0]), 5))
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(job([0]), 5))["labels"] == [1]
    pool.close()


def test_what_a_model_prints_never_reaches_the_answer(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    reply = asyncio.run(pool.call(job([-1], [0]), 5))
    assert reply["ok"] and reply["labels"] == [2, 2]  # not the line the model forged
    assert asyncio.run(pool.call(job([0]), 5))["labels"] == [1]  # and the pipe is still in step
    assert len(pool.all) == 1
    pool.close()


def test_a_request_larger_than_a_pipe_holds_is_written_in_pieces(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    rows = [[0.0] for _ in range(50000)]  # ~350 KB: the pipe takes 64 KiB at a time
    request = job(*rows)
    assert len(request.document) > 4 * 65536
    assert asyncio.run(pool.call(request, 10))["labels"] == [50000] * 50000
    pool.close()


def test_a_worker_added_from_another_thread_serves_a_waiting_caller(spawn: Callable[[], Worker]) -> None:
    pool = WorkerPool("v1", {}, spawn)  # no worker yet: the caller waits
    worker = spawn()

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(pool.call(job([0]), 10))
        await asyncio.sleep(0.1)
        threading.Thread(target=pool.add, args=(worker,)).start()
        return await waiting

    assert asyncio.run(scenario())["labels"] == [1]
    pool.close()


def test_a_worker_started_for_a_closed_pool_is_stopped(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    pool.close()
    late = spawn()  # a replacement that finished loading after the pool closed
    pool.add(late)
    assert not late.alive and pool.all == []


def waiting_behind_a_slow_call(pool: WorkerPool, seconds: float, *jobs: tuple[Job, int]) -> list[Any]:
    """Each (job, together) called while a slow call holds the only worker; their answers (or errors)."""

    async def scenario() -> list[Any]:
        slow = asyncio.ensure_future(pool.call(job([seconds]), 10))
        await asyncio.sleep(0.1)
        calls = [asyncio.ensure_future(pool.call(each, 10, together)) for each, together in jobs]
        await asyncio.sleep(0.05)  # all waiting, in this order
        await slow
        return await asyncio.gather(*calls, return_exceptions=True)

    return asyncio.run(scenario())


def test_waiting_jobs_are_scored_together_and_each_caller_gets_its_own_rows(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)
    replies = waiting_behind_a_slow_call(
        pool, 0.3, (job([0, 1]), 8), (job([0, 2], [0, 3]), 8), (job([0, 4]), 8)
    )
    # One call of four rows, split back to its three callers.
    assert [reply["labels"] for reply in replies] == [[4001], [4002, 4003], [4004]]
    assert all(reply["ok"] for reply in replies)
    pool.close()


def test_no_more_jobs_are_taken_along_than_the_policy_allows(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    replies = waiting_behind_a_slow_call(pool, 0.3, (job([0, 1]), 2), (job([0, 2]), 2), (job([0, 3]), 2))
    assert [reply["labels"] for reply in replies] == [[2001], [2002], [1003]]
    alone = waiting_behind_a_slow_call(pool, 0.3, (job([0, 1]), 1), (job([0, 2]), 1))
    assert [reply["labels"] for reply in alone] == [[1001], [1002]]
    pool.close()


def test_jobs_asking_for_different_things_are_not_scored_together(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    with_proba = Job(job([0, 2]).document, True, False)
    replies = waiting_behind_a_slow_call(pool, 0.3, (job([0, 1]), 8), (with_proba, 8), (job([0, 3]), 8))
    assert [reply["labels"] for reply in replies] == [[2001], [1002], [2003]]
    pool.close()


def test_a_job_that_kills_a_shared_call_fails_alone_and_the_others_are_served(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    good, deadly, other = (
        waiting_behind_a_slow_call(pool, 0.3, (job([0, 1]), 8), (job([-2, 2]), 8), (job([0, 3]), 8))
    )  # fmt: skip
    assert isinstance(deadly, WorkerFailed)
    assert good["labels"] == [1001] and other["labels"] == [1003]  # each tried again alone
    assert not first.alive
    wait_for(lambda: len(pool.all) == 1 and pool.all[0].alive)
    pool.close()


def test_a_job_the_model_refuses_in_a_shared_call_fails_alone_on_the_same_worker(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    good, refused, other = (
        waiting_behind_a_slow_call(pool, 0.3, (job([0, 1]), 8), (job([-3, 2]), 8), (job([0, 3]), 8))
    )  # fmt: skip
    assert refused == {"ok": False, "error": "ValueError"}
    assert good["labels"] == [1001] and other["labels"] == [1003]
    assert pool.all == [first] and first.alive
    pool.close()


def test_jobs_taken_along_by_a_caller_that_goes_away_are_served_by_the_replacement(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)
    [first] = pool.all

    async def scenario() -> Any:
        slow = asyncio.ensure_future(pool.call(job([0.2]), 10))
        await asyncio.sleep(0.1)
        leader = asyncio.ensure_future(pool.call(job([0.5, 1]), 10, 8))  # its call sleeps half a second
        rider = asyncio.ensure_future(pool.call(job([0, 2]), 10, 8))
        await slow
        await asyncio.sleep(0.1)  # the shared call is under way
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await rider

    assert asyncio.run(scenario())["labels"] == [1002]
    assert not first.alive
    pool.close()

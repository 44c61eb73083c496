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

from bastion.gateway.pool import Limits, Worker, WorkerFailed, WorkerPool, WorkersBusy

# rows[0][0] says what the model does: 0 answer, >0 sleep that many seconds first, -1 print to stdout first.
MODEL = """
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
        return [len(rows)] * len(rows)


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


def line(*rows: list[float]) -> bytes:
    return b'{"op":"predict","proba":false,"contributions":false,"document":{"inputs":%s}}\n' % (
        str([list(row) for row in rows]).encode()
    )


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
        calls = [pool.call(line([0.3]), 5), pool.call(line([0], [0]), 5), pool.call(line([0], [0], [0]), 5)]
        return await asyncio.gather(*calls)

    replies = asyncio.run(scenario())
    assert [reply["labels"] for reply in replies] == [[1], [2, 2], [3, 3, 3]]
    pool.close()


def test_a_caller_that_cannot_get_a_worker_in_time_is_told_the_pool_is_busy(
    spawn: Callable[[], Worker],
) -> None:
    pool = pool_of(spawn)

    async def scenario() -> tuple[Any, ...]:
        slow = asyncio.ensure_future(pool.call(line([1.0]), 5))
        await asyncio.sleep(0.1)  # the slow request holds the only worker
        with pytest.raises(WorkersBusy):
            await pool.call(line([0]), 0.2)
        return (await slow, await pool.call(line([0]), 5))  # the worker went back to the pool

    slow, after = asyncio.run(scenario())
    assert slow["labels"] == [1] and after["labels"] == [1]
    assert len(pool.all) == 1
    pool.close()


def test_a_worker_that_overruns_its_time_is_killed_and_replaced(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    with pytest.raises(WorkerFailed, match="in time"):
        asyncio.run(pool.call(line([30]), 0.5))
    wait_for(lambda: not first.alive)
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(line([0]), 5))["labels"] == [1]
    pool.close()


def test_a_caller_that_goes_away_mid_answer_retires_its_worker(spawn: Callable[[], Worker]) -> None:
    """The worker would answer later, into the next caller's request: it is replaced instead."""
    pool = pool_of(spawn)
    [first] = pool.all

    async def scenario() -> None:
        task = asyncio.ensure_future(pool.call(line([0.5]), 5))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    wait_for(lambda: not first.alive)
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(line([0], [0]), 5))["labels"] == [2, 2]
    pool.close()


def test_a_dead_worker_fails_its_request_and_is_replaced(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    [first] = pool.all
    first.process.kill()
    first.process.wait()
    with pytest.raises(WorkerFailed, match="stopped"):
        asyncio.run(pool.call(line([0]), 5))
    wait_for(lambda: len(pool.all) == 1 and pool.all[0] is not first)
    assert asyncio.run(pool.call(line([0]), 5))["labels"] == [1]
    pool.close()


def test_what_a_model_prints_never_reaches_the_answer(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    reply = asyncio.run(pool.call(line([-1], [0]), 5))
    assert reply["ok"] and reply["labels"] == [2, 2]  # not the line the model forged
    assert asyncio.run(pool.call(line([0]), 5))["labels"] == [1]  # and the pipe is still in step
    assert len(pool.all) == 1
    pool.close()


def test_a_request_larger_than_a_pipe_holds_is_written_in_pieces(spawn: Callable[[], Worker]) -> None:
    pool = pool_of(spawn)
    rows = [[0.0] * 20 for _ in range(5000)]  # ~500 KB: the pipe takes 64 KiB at a time
    request = line(*rows)
    assert len(request) > 4 * 65536
    assert asyncio.run(pool.call(request, 10))["labels"] == [5000] * 5000
    pool.close()


def test_a_worker_added_from_another_thread_serves_a_waiting_caller(spawn: Callable[[], Worker]) -> None:
    pool = WorkerPool("v1", {}, spawn)  # no worker yet: the caller waits
    worker = spawn()

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(pool.call(line([0]), 10))
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

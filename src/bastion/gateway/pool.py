"""Worker processes for one model version: started with the isolation ``worker`` applies, fed one call at a
time each (a call may score several waiting requests together), killed and replaced when they crash or
overrun their time. A worker failure is a 503 for the request that caused it, never the gateway's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

import orjson

from bastion.core.errors import Unavailable


class WorkerFailed(Unavailable):
    code = "model.worker_failed"
    title = "Model worker failed"
    default_remedy = "Retry; the worker is being replaced."


class WorkersBusy(Unavailable):
    code = "model.busy"
    title = "All model workers are busy"
    default_remedy = "Retry after a moment, or ask for more workers in the model's serving policy."


TIMED_OUT = "The model worker did not answer in time."
STOPPED = "The model worker stopped."


def _timed_out() -> NoReturn:
    raise WorkerFailed(TIMED_OUT)


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Whether ``fd`` is ready for ``event`` (or hung up) before ``deadline``. ``poll``, not ``select``: a
    busy gateway's descriptors may number past select's 1024."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 3600
    open_files: int = 64


class Worker:
    """One model process, spoken to in JSON lines over its own pipes (both non-blocking): ``call`` blocks
    (starting and loading, off the event loop), ``ask`` awaits (a prediction, on the event loop, which serves
    other requests while the worker computes)."""

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
        assert self.process.stdin is not None  # noqa: S101 - created with a pipe
        assert self.process.stdout is not None  # noqa: S101 - created with a pipe
        self._to, self._from = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(self._to, False)
        os.set_blocking(self._from, False)
        self._received = bytearray()  # what the worker has written of its answer so far
        hello = self._reply_by(time.monotonic() + start_timeout)  # its first line: how it is isolated
        self.isolation = hello.get("hello", {})

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request and its answer, blocking (loading a model; predictions are ``ask``ed)."""
        deadline = time.monotonic() + timeout
        unsent = memoryview(json.dumps(request).encode() + b"\n")
        while unsent:
            if not _ready(self._to, select.POLLOUT, deadline):
                self._fail(TIMED_OUT)
            unsent = unsent[self._send(unsent) :]
        return self._reply_by(deadline)

    def _reply_by(self, deadline: float) -> dict[str, Any]:
        while True:
            reply = self._receive()
            if reply is not None:
                return reply
            if not _ready(self._from, select.POLLIN, deadline):
                self._fail(TIMED_OUT)

    async def ask(self, line: bytes, timeout: float) -> dict[str, Any]:
        """``call`` on the running event loop, which serves other requests while the worker computes. After a
        failure the worker is out of step with its pipes, or dead: the caller must ``kill`` it, off the loop
        (``WorkerPool`` does)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        unsent = memoryview(line)

        def settle(step: Callable[[], dict[str, Any] | None]) -> None:
            if answer.done():
                return
            try:
                reply = step()
            except WorkerFailed as error:
                answer.set_exception(error)
            else:
                if reply is not None:
                    answer.set_result(reply)

        def send() -> None:
            nonlocal unsent
            unsent = unsent[self._send(unsent, kill=False) :]
            if not unsent:
                loop.remove_writer(self._to)

        send()  # nearly always whole at once: a pipe holds 64 KiB
        if unsent:
            loop.add_writer(self._to, settle, send)
        loop.add_reader(self._from, settle, partial(self._receive, kill=False))
        expiry = loop.call_later(timeout, settle, _timed_out)
        try:
            return await answer
        finally:
            expiry.cancel()
            loop.remove_reader(self._from)
            loop.remove_writer(self._to)

    def _send(self, data: memoryview, *, kill: bool = True) -> int:
        try:
            return os.write(self._to, data)
        except BlockingIOError:
            return 0
        except OSError:
            return self._fail(STOPPED, kill=kill)

    def _receive(self, *, kill: bool = True) -> dict[str, Any] | None:
        """Read what the worker wrote; its reply once the line is whole (``None`` before)."""
        try:
            chunk = os.read(self._from, 65536)
        except BlockingIOError:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            return self._fail(STOPPED, kill=kill)
        self._received += chunk
        end = self._received.find(b"\n")
        if end < 0:
            return None
        if end != len(self._received) - 1:  # more than one line for one request: not our protocol
            return self._fail("The model worker answered out of turn.", kill=kill)
        line = bytes(self._received)
        self._received.clear()
        try:
            reply: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError:
            return self._fail("The model worker answered garbage.", kill=kill)
        return reply

    def _fail(self, message: str, *, kill: bool = True) -> NoReturn:
        if kill:
            self.kill()
        raise WorkerFailed(message)

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


@dataclass(frozen=True, slots=True)
class Job:
    """One prediction for a worker: the validated document (JSON) and what to return besides labels."""

    document: bytes
    proba: bool
    contributions: bool

    def goes_with(self, other: Job) -> bool:
        """Whether the two can be scored in one call of the model: they ask for the same things."""
        return self.proba == other.proba and self.contributions == other.contributions


def request_line(jobs: list[Job]) -> bytes:
    """The worker's request line: one job's document, or several jobs' documents scored together (jobs that
    go with each other)."""
    first = jobs[0]
    head = b'{"op":"predict","proba":%s,"contributions":%s,' % (
        b"true" if first.proba else b"false",
        b"true" if first.contributions else b"false",
    )
    if len(jobs) == 1:
        return head + b'"document":' + first.document + b"}\n"
    return head + b'"documents":[' + b",".join(job.document for job in jobs) + b"]}\n"


def _shares(reply: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Each job's answer from the worker's answer to several: its ``replies``, in order (or, when it refused
    the request as a whole, that refusal for each)."""
    replies = reply.get("replies")
    if isinstance(replies, list) and len(replies) == count and all(isinstance(r, dict) for r in replies):
        return replies
    if reply.get("ok") is False:
        return [reply] * count
    raise WorkerFailed("The model worker answered garbage.")


@dataclass(eq=False, slots=True)
class _Turn:
    """A caller waiting for a worker: handed a worker (its turn), or the answer to its job when another
    caller's turn took it along."""

    job: Job
    future: asyncio.Future[Worker | dict[str, Any]]
    alone: bool  # tried again after a call it shared failed: scored by itself, never taken along
    expiry: asyncio.TimerHandle | None = None


@dataclass
class WorkerPool:
    """The workers of one version, each serving one call at a time; callers wait their turn in order. A
    caller whose turn comes may take jobs of waiting callers along (``together``): the worker scores their
    rows in one call of the model — what a call costs is mostly fixed, so a busy model serves more — and
    each caller gets the answer to its own rows. ``spawn`` (given by the gateway) starts and loads a new
    worker — it verifies the version again first, so a replacement loads only what still verifies. Workers
    are added from any thread (a replacement starts on one of its own); predictions are asked on an event
    loop."""

    version_id: str
    description: dict[str, Any]
    spawn: Callable[[], Worker]
    config: dict[str, Any] = field(default_factory=dict)  # how it was started: flavor, entry point, workers
    all: list[Worker] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    restarting: int = 0  # replacements being started
    _idle: deque[Worker] = field(default_factory=deque)
    _waiting: deque[_Turn] = field(default_factory=deque)

    def add(self, worker: Worker) -> None:
        with self.lock:
            if not self.closed:
                self.all.append(worker)
        if self.closed:  # the pool closed while this one started: nobody will ask it anything
            worker.kill()
            return
        self._release(worker)

    async def call(self, job: Job, timeout: float, together: int = 1) -> dict[str, Any]:
        """The answer to ``job``, scored with up to ``together - 1`` waiting jobs that go with it."""
        return await self._call(job, timeout, together, alone=False)

    async def _call(self, job: Job, timeout: float, together: int, *, alone: bool) -> dict[str, Any]:
        got = await self._acquire(job, timeout, alone)
        if not isinstance(got, Worker):
            return got  # taken along by another caller's turn
        worker = got
        riders = [] if alone else self._riders(job, together - 1)
        jobs = [job, *(turn.job for turn in riders)]
        try:
            reply = await worker.ask(request_line(jobs), timeout)
            answers = _shares(reply, len(jobs)) if riders else [reply]
        # Failed, or its caller went away mid-answer: either way the worker is out of step.
        except BaseException as error:
            self._replace(worker)
            if riders:
                # Whose job broke a shared call is unknown, and the riders' callers did nothing wrong: each
                # job is tried again by itself, so a job that kills workers fails alone.
                self._requeue(riders, timeout)
                if isinstance(error, WorkerFailed):
                    return await self._call(job, timeout, 1, alone=True)
            raise
        self._release(worker)
        for turn, answer in zip(riders, answers[1:], strict=True):
            if not turn.future.done():  # its caller may have gone away meanwhile
                turn.future.set_result(answer)
        return answers[0]

    async def _acquire(self, job: Job, timeout: float, alone: bool) -> Worker | dict[str, Any]:
        loop = asyncio.get_running_loop()
        with self.lock:
            if self._idle:
                return self._idle.popleft()
            turn = _Turn(job, loop.create_future(), alone)
            self._waiting.append(turn)
        self._expire(turn, timeout)
        try:
            return await turn.future
        except asyncio.CancelledError:
            handed = turn.future
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                result = handed.result()
                if isinstance(result, Worker):
                    self._release(result)  # handed over just as the caller went away: pass it on
            raise
        finally:
            if turn.expiry is not None:
                turn.expiry.cancel()

    def _expire(self, turn: _Turn, timeout: float) -> None:
        turn.expiry = turn.future.get_loop().call_later(timeout, _busy, turn.future)

    def _riders(self, job: Job, most: int) -> list[_Turn]:
        """Up to ``most`` waiting turns (on this loop) whose jobs go with ``job``; others keep their place."""
        if most < 1:
            return []
        loop = asyncio.get_running_loop()
        taken: list[_Turn] = []
        with self.lock:
            if not self._waiting:
                return taken
            kept: deque[_Turn] = deque()
            while self._waiting and len(taken) < most:
                turn = self._waiting.popleft()
                if turn.future.done():  # timed out or cancelled while waiting
                    continue
                if turn.alone or turn.future.get_loop() is not loop or not turn.job.goes_with(job):
                    kept.append(turn)
                else:
                    taken.append(turn)
            kept.extend(self._waiting)
            self._waiting = kept
        for turn in taken:
            if turn.expiry is not None:  # being served: the worker's time limit applies now
                turn.expiry.cancel()
        return taken

    def _requeue(self, turns: list[_Turn], timeout: float) -> None:
        """Turns whose shared call failed wait again — first in line, each to be scored alone."""
        with self.lock:
            for turn in reversed(turns):
                if not turn.future.done():
                    turn.alone = True
                    self._waiting.appendleft(turn)
            idle, self._idle = list(self._idle), deque()
        for turn in turns:
            if not turn.future.done():
                self._expire(turn, timeout)
        for worker in idle:  # another worker may be free right now: it takes the first of them
            self._release(worker)

    def _release(self, worker: Worker) -> None:
        """Hand ``worker`` to the longest waiting caller, or back to the idle ones."""
        with self.lock:
            while self._waiting:
                turn = self._waiting.popleft().future
                if turn.done():  # timed out or cancelled while waiting
                    continue
                if _on_loop_of(turn):
                    turn.set_result(worker)
                else:  # added from another thread: the waiter's loop completes the hand-over
                    turn.get_loop().call_soon_threadsafe(self._hand, turn, worker)
                return
            self._idle.append(worker)

    def _hand(self, turn: asyncio.Future[Worker | dict[str, Any]], worker: Worker) -> None:
        if turn.done():
            self._release(worker)
        else:
            turn.set_result(worker)

    @property
    def dead(self) -> bool:
        """No worker left and none being started (a replacement failed): the pool must be started anew."""
        return not self.all and not self.restarting

    def _replace(self, dead: Worker) -> None:
        with self.lock:
            if dead in self.all:
                self.all.remove(dead)
            self.restarting += 1

        def restart() -> None:  # on a thread of its own: killing and loading block
            try:
                dead.kill()
                if not self.closed:
                    self.add(self.spawn())
            except Exception:  # noqa: BLE001, S110 - a dead pool is started anew by the next request
                pass
            finally:
                with self.lock:
                    self.restarting -= 1

        threading.Thread(target=restart, daemon=True).start()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            workers, self.all = list(self.all), []
            self._idle.clear()
        for worker in workers:
            worker.kill()


def _busy(turn: asyncio.Future[Worker | dict[str, Any]]) -> None:
    if not turn.done():
        turn.set_exception(WorkersBusy("Every worker of this model is busy."))


def _on_loop_of(future: asyncio.Future[Any]) -> bool:
    try:
        return asyncio.get_running_loop() is future.get_loop()
    except RuntimeError:  # no loop running in this thread
        return False

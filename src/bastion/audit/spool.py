"""``AuditSpool``: buffered audit records handed to the audit appender, a process of its own (``appender``).

Why a process: the server's buffered records (predictions) were group-committed by a thread of the server
process, and building a batch's rows, leaf hashes and statements is milliseconds of Python every linger,
holding the interpreter lock the event loop needs. Measured under load, most requests slower than the 99th
percentile had been due while such a batch was being built, and appending nothing in-process took about
5 ms off the p99 (benchmarks/bench_gateway.py). In another process that work still takes CPU, but none of
the event loop's turn.

What stays in the server process: the secret screen (in the writer) and the encoding, so a record that
cannot be stored fails its own caller; then one write of one line to a pipe. A line is at most ``PIPE_BUF``
bytes, so the write is atomic — whole or refused —, and it never blocks: whatever is not handed over (the
appender not running or restarting, the pipe full, a record too long for one atomic write) is appended
in-process as before. Nothing is dropped to keep the pipe moving.

Durability is a buffered record's: committed within one linger. A record already in the pipe survives the
server's crash (the appender reads to the end of its input and commits it); one inside a batch that fails
is lost, as in-process, and the failure is reported: the writer then appends durably until an in-process
batch succeeds, and the appender is started again after ``restart_after_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bastion.core.errors import AuditUnavailable
from bastion.spine.context import Context, Principal, PrincipalType, Resource
from bastion.spine.interfaces import AuditRecord, Outcome

log = logging.getLogger(__name__)

# The words of the protocol with the appender (``appender``'s docstring describes it).
FLUSH, FLUSHED, FAILED, READY = "flush", "flushed", "failed", "ready"
ATOMIC_WRITE = select.PIPE_BUF  # a pipe write of at most this many bytes is whole or not at all
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux; elsewhere the pipe keeps its default size
# As strict as the leaf's canonical encoding: no NaN or infinity, and keys that can be sorted.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=True)


def encode_record(record: AuditRecord) -> bytes:
    """One line: the record's fields as a JSON array (``decode_record`` is the inverse). Raises
    ``AuditUnavailable`` for a record no audit log could store (a value JSON cannot carry)."""
    context, principal = record.context, record.context.principal
    fields = [
        record.occurred_at.isoformat(), principal.id, principal.type.value, principal.auth_method,
        context.request_id, context.source_address, context.user_agent, context.purpose,
        record.action, record.resource.type, record.resource.id, record.outcome.value, record.reason,
        list(record.policy_ids), list(record.data_categories), dict(record.details),
    ]  # fmt: skip
    try:
        return _ENCODER.encode(fields).encode() + b"\n"
    except (TypeError, ValueError) as error:
        raise AuditUnavailable(
            "An audit record was refused because a value in it cannot be stored as JSON.",
            remedy="Record numbers, strings, lists and mappings only (no NaN or infinity).",
        ) from error


def decode_record(fields: list[Any]) -> AuditRecord:
    """The inverse of ``encode_record`` (in the appender)."""
    (occurred_at, actor_id, actor_type, auth_method, request_id, source_address, user_agent, purpose,
     action, resource_type, resource_id, outcome, reason, policy_ids, data_categories, details) = fields  # fmt: skip  # noqa: E501
    principal = Principal(id=actor_id, type=PrincipalType(actor_type), auth_method=auth_method)
    context = Context(
        principal, request_id=request_id, source_address=source_address, user_agent=user_agent,
        purpose=purpose,
    )  # fmt: skip
    return AuditRecord(
        occurred_at=datetime.fromisoformat(occurred_at),
        context=context,
        action=action,
        resource=Resource(resource_type, resource_id),
        outcome=Outcome(outcome),
        reason=reason,
        policy_ids=tuple(policy_ids),
        data_categories=tuple(data_categories),
        details=details,
    )


class AuditSpool:
    def __init__(
        self,
        database_url: str,
        *,
        linger_s: float = 0.025,
        restart_after_s: float = 5.0,
        start_timeout_s: float = 30.0,
    ) -> None:
        self._settings = json.dumps({"database_url": database_url, "linger_s": linger_s}).encode() + b"\n"
        self._restart_after = restart_after_s
        self._start_timeout = start_timeout_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a barrier answered, or the appender gone
        self._closing = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._to = -1  # the appender's input while records may be handed over, else -1
        self._generation = 0  # counts appenders adopted: an earlier one's barrier is never answered
        self._barrier = 0
        self._flushed = 0
        self._watcher: threading.Thread | None = None
        self._on_failure: Callable[[], None] = lambda: None

    def watch(self, on_failure: Callable[[], None]) -> None:
        """``on_failure`` is called when a batch failed or the appender went away."""
        self._on_failure = on_failure

    @property
    def running(self) -> bool:
        return self._to >= 0

    @property
    def pid(self) -> int | None:
        """The appender's process id while records are handed to it."""
        process = self._process
        return process.pid if process is not None and self.running else None

    def start(self) -> None:
        """Start the appender (waiting until it is ready) and the thread that reads its answers and starts
        it again when it goes away."""
        if self._watcher is not None or self._closing.is_set():
            return
        process = self._spawn()
        with self._lock:
            if process is not None:
                self._adopt(process)
            self._watcher = threading.Thread(
                target=self._watch, args=(process,), name="bastion-audit-spool", daemon=True
            )
            self._watcher.start()

    def put(self, record: AuditRecord) -> bool:
        """Hand ``record`` over; ``False``: not handed over (the caller appends it in-process)."""
        if not self.running:
            return False
        line = encode_record(record)
        if len(line) > ATOMIC_WRITE:
            return False
        with self._lock:
            if self._to < 0:
                return False
            try:
                os.write(self._to, line)
            except BlockingIOError:
                return False  # the pipe is full: the appender is behind
            except OSError:
                self._disconnect()  # the appender is gone; its watcher will say so and start another
                return False
        return True

    def flush(self, timeout: float) -> None:
        """Wait until every record handed over so far has been committed (or its batch has failed)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._to < 0:
                return
            self._barrier += 1
            barrier, generation = self._barrier, self._generation
            line = json.dumps([FLUSH, barrier]).encode() + b"\n"
            while True:  # the barrier must follow the records: wait for room in a full pipe
                try:
                    os.write(self._to, line)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.warning("audit spool: flush timed out, the appender is not reading")
                        return
                    select.select([], [self._to], [], remaining)
                except OSError:
                    self._disconnect()
                    return
            answered = self._changed.wait_for(
                lambda: self._flushed >= barrier or self._generation != generation or self._to < 0,
                timeout=max(0.0, deadline - time.monotonic()),
            )
        if not answered:
            log.warning("audit spool: flush timed out waiting for the appender")

    def close(self) -> None:
        """End the appender's input (it commits what it has and exits) and wait for it."""
        with self._lock:
            self._closing.set()
            process, watcher = self._process, self._watcher
            self._disconnect()
        if process is not None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.error("audit spool: the appender did not finish in 30 s; killed")
                process.kill()
                process.wait()
        if watcher is not None:
            watcher.join(timeout=30)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """A new appender, once it has said it is ready; ``None`` if it did not."""
        process = subprocess.Popen(
            [sys.executable, "-I", "-m", "bastion.audit.appender"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={name: value for name, value in os.environ.items() if not name.startswith("BASTION_")},
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C is the server's: it closes the appender in order
            cwd="/",
        )
        assert process.stdin is not None  # noqa: S101 - created with a pipe
        assert process.stdout is not None  # noqa: S101 - created with a pipe
        # Not Linux, or above the system's limit: a smaller pipe only means falling back sooner.
        with contextlib.suppress(OSError):
            fcntl.fcntl(process.stdin.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
        try:
            process.stdin.write(self._settings)  # the URL may hold a password: never argv or environment
            process.stdin.flush()
            readable, _, _ = select.select([process.stdout], [], [], self._start_timeout)
            hello = process.stdout.readline() if readable else b""
            if json.loads(hello or b"null") != [READY]:
                raise OSError("the appender did not start")
        except (OSError, ValueError):
            log.exception("audit spool: the appender could not be started; appending in-process")
            _reap(process, kill=True)
            return None
        os.set_blocking(process.stdin.fileno(), False)
        return process

    def _adopt(self, process: subprocess.Popen[bytes]) -> None:
        """Hand records to ``process`` from now on (holding the lock)."""
        assert process.stdin is not None  # noqa: S101 - created with a pipe
        self._process, self._to = process, process.stdin.fileno()
        self._generation += 1

    def _disconnect(self) -> None:
        """Stop handing records over (holding the lock); closing the pipe ends the appender's input."""
        if self._to >= 0 and self._process is not None and self._process.stdin is not None:
            self._to = -1
            with contextlib.suppress(OSError):  # it was gone already
                self._process.stdin.close()
        self._changed.notify_all()

    def _watch(self, process: subprocess.Popen[bytes] | None) -> None:
        while True:
            if process is not None:
                self._read(process)
                with self._lock:
                    self._disconnect()
                    self._process = None
                code = _reap(process)
                if self._closing.is_set():
                    return
                log.error("audit spool: the appender exited (%s); appending in-process for now", code)
                self._on_failure()
            if self._closing.wait(self._restart_after):
                return
            process = self._spawn()
            with self._lock:
                if self._closing.is_set():
                    if process is not None:
                        _reap(process, kill=True)
                    return
                if process is not None:
                    self._adopt(process)

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        """The appender's answers, until its output ends."""
        assert process.stdout is not None  # noqa: S101 - created with a pipe
        for line in process.stdout:
            answer: list[Any] = json.loads(line)
            if answer[0] == FLUSHED:
                with self._lock:
                    self._flushed = max(self._flushed, int(answer[1]))
                    self._changed.notify_all()
            elif answer[0] == FAILED:
                log.error("audit spool: the appender could not commit a batch of %s records", answer[1])
                self._on_failure()


def _reap(process: subprocess.Popen[bytes], *, kill: bool = False) -> int:
    """Wait for ``process`` (killed first if ``kill``) and close its pipes; its exit code."""
    if kill:
        process.kill()
    code = process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # closed already
                pipe.close()
    return code

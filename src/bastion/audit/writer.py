"""Group commit for audit records that are not part of an action's transaction (in the server, buffered
records go to the audit appender process first: ``spool``).

Denials, reads, refusals and (later) inference events carry no other data, so many of them can share one
transaction — one fsync — without weakening anything: each caller blocks until the transaction holding its
record has committed, so an acknowledged event is durable. Batching is natural rather than timed: while one
batch commits, the next one queues up, so a lone caller pays one commit and a crowd shares them.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from concurrent.futures import Future

from bastion.audit.log import MerkleAuditLog, refuse_secrets
from bastion.audit.spool import AuditSpool, encode_record
from bastion.core.durable import ACK_TIMEOUT_SECONDS, wait_durable
from bastion.core.errors import AuditUnavailable
from bastion.spine.interfaces import AuditRecord
from bastion.store.database import Database

log = logging.getLogger(__name__)

_STOP = object()
DEFAULT_MAX_BATCH = 2000
DEFAULT_LINGER_SECONDS = 0.001
# A batch in which nobody waits (buffered records only) may gather for longer: fewer, larger transactions.
BUFFERED_LINGER_SECONDS = 0.025


class GroupCommitWriter:
    def __init__(
        self,
        database: Database,
        audit_log: MerkleAuditLog,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
        spool: AuditSpool | None = None,
    ) -> None:
        self._database = database
        self._log = audit_log
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._failing = False  # the last batch failed: buffered callers must wait for a durable append
        self._waited = threading.Event()  # a record somebody waits on is queued
        # Where buffered records go first when it is running (the server's audit appender process).
        self._spool = spool
        if spool is not None:
            spool.watch(self._spool_failed)

    def start_spool(self) -> None:
        """Hand buffered records to the audit appender process from now on (the server does, at start)."""
        if self._spool is not None:
            self._spool.start()

    def _spool_failed(self) -> None:
        # Its batch is lost, like a failed in-process batch: append durably until one succeeds here.
        self._failing = True

    def submit(self, record: AuditRecord, *, waited: bool = True) -> Future[int]:
        """Queue ``record``; the future resolves to its sequence number once it is durable. ``waited=False``
        says no caller blocks on it, so its batch may linger to gather more."""
        future: Future[int] = Future()
        self._put(record, future, waited)
        return future

    def _put(
        self, record: AuditRecord, future: Future[int] | None, waited: bool, *, screened: bool = False
    ) -> None:
        # Here, so one bad record fails its own caller and not the whole batch: a secret, or a value the log's
        # JSON cannot carry (NaN from a model's output in a decision trace).
        if not screened:
            refuse_secrets(record)
        encode_record(record)
        with self._lock:
            if self._closed:
                raise AuditUnavailable("The audit writer is shut down.")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bastion-audit-writer", daemon=True)
                self._thread.start()
            self._queue.put((record, future, waited))
        if waited:
            self._waited.set()  # cuts a buffered batch's linger short: somebody waits on this one

    def append(self, record: AuditRecord, timeout: float = ACK_TIMEOUT_SECONDS) -> int:
        """Append durably and return the sequence number (blocks until committed)."""
        return wait_durable(self.submit(record), timeout)

    def enqueue(self, record: AuditRecord) -> Future[int] | None:
        """Queue ``record`` without waiting for its commit (high-volume data-plane events, e.g. predictions):
        it is committed with the next batch, within milliseconds, and flushed on ``close``; only a hard crash
        in that window can lose it. With a running spool the record is handed to the audit appender process
        instead (in-process when the spool cannot take it). Fails closed: while the last batch failed (here or
        in the appender), the record is submitted to be appended durably instead, and the future returned
        must be waited on (``AuditUnavailable`` then reaches the caller rather than a silently dropped
        record); ``None``: queued, nothing to wait for."""
        if self._failing:
            return self.submit(record)
        refuse_secrets(record)
        if self._spool is not None and self._spool.put(record):  # ``put`` refuses what JSON cannot carry
            return None
        self._put(record, None, False, screened=True)  # no future: nobody waits on it (``flush``: a barrier)
        return None

    def flush(self, timeout: float = ACK_TIMEOUT_SECONDS) -> None:
        """Wait until every record queued so far has been committed (or has failed): readers of the log
        then see all that was acknowledged, buffered records included."""
        if self._spool is not None:
            self._spool.flush(timeout)
        barrier: Future[int] = Future()  # batches commit in order: once the barrier's has, all before it have
        with self._lock:
            if self._closed or self._thread is None:
                return  # nothing queued, or ``close`` already committed everything
            self._queue.put((None, barrier, True))
        self._waited.set()
        with contextlib.suppress(Exception):  # a failed batch was reported to its own callers
            barrier.result(timeout)

    def close(self) -> None:
        """Commit everything queued (the appender process's too), then stop the thread."""
        if self._spool is not None:
            self._spool.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            self._waited.set()
            thread.join()

    def _run(self) -> None:
        stopping = False
        previous = 1
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            waited = first[2]  # type: ignore[index]
            if not waited:
                # Nobody waits on this batch yet: it gathers without the thread waking for each record,
                # until the linger ends or a record somebody waits on arrives (``_put`` sets the event).
                waited = self._waited.wait(BUFFERED_LINGER_SECONDS)
            self._waited.clear()  # before draining: a record put after this is drained or signals anew
            batch = [first]
            # Like PostgreSQL's commit_delay/commit_siblings: when the last batch showed concurrent
            # writers, wait a moment for the ones just released to come back, so one fsync serves more.
            deadline = time.monotonic() + (self._linger if waited and previous > 1 else 0.0)
            while len(batch) < self._max_batch:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            previous = len(batch)
            self._commit(batch)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[AuditRecord | None, Future[int] | None, bool]]) -> None:
        """Append the batch's records (a ``None`` record is a flush barrier) and settle its futures (a
        buffered record has none)."""
        records = [record for record, _, _ in batch if record is not None]
        try:  # anything at all fails this batch only: a dead writer thread would hang every caller
            seqs = iter(self._append(records) if records else ())
        except Exception as error:
            self._failing = True
            log.exception("audit batch of %d records failed", len(batch))
            failure = (
                error
                if isinstance(error, AuditUnavailable)
                else AuditUnavailable("The audit log could not store the record.")
            )
            for _, future, _ in batch:
                if future is not None:
                    future.set_exception(failure)
            return
        self._failing = self._failing and not records  # a barrier alone proves nothing about appends
        for record, future, _ in batch:
            seq = next(seqs) if record is not None else -1
            if future is not None:
                future.set_result(seq)

    def _append(self, records: list[AuditRecord]) -> list[int]:
        with self._database.transaction() as session:
            return self._log.append_many(session, records, screened=True)

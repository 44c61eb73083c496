"""Delivers the audit log to every sink at least once, in order, resuming from a persisted cursor.

A pass reads each sink's ``next_seq``, sends the following events a batch at a time, and advances the cursor
only after the sink took the batch — so a crash or an outage repeats events, never skips them. A failing sink
backs off exponentially (1 s doubling to 5 min) without holding up the others. State changes (a sink starting
to fail, and recovering) are audited; routine deliveries are not, or every export would export itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.audit.export.sinks import ExportError, Sink
from bastion.audit.query import AUDIT_LOG, EventView
from bastion.core.clock import Clock
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import AuditEvent, AuditExportCursor, AuditHead

log = logging.getLogger(__name__)
BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_MAX = timedelta(minutes=5)


@dataclass
class SinkStatus:
    name: str
    next_seq: int
    delivered: int = 0
    failures: int = 0
    error: str | None = None
    retry_at: datetime | None = None


class Exporter:
    def __init__(
        self, database: Database, uow: UnitOfWork, sinks: list[Sink], clock: Clock, batch_size: int = 500
    ) -> None:
        self._database = database
        self._uow = uow
        self._sinks = sinks
        self._clock = clock
        self._batch = batch_size
        self._retry_at: dict[str, datetime] = {}

    def run_once(self, context: Context, max_batches: int = 100) -> list[SinkStatus]:
        return [self._drain(context, sink, max_batches) for sink in self._sinks]

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()

    def _drain(self, context: Context, sink: Sink, max_batches: int) -> SinkStatus:
        status = self._cursor(sink.name)
        retry_at = self._retry_at.get(sink.name)
        if retry_at is not None and self._clock.now() < retry_at:
            status.retry_at = retry_at
            return status
        for _ in range(max_batches):
            events = self._events_after(status.next_seq)
            if not events:
                break
            try:
                sink.send(events)
            except ExportError as error:
                self._failed(context, sink.name, status, error)
                return status
            status.next_seq = events[-1]["seq"] + 1
            status.delivered += len(events)
            self._advance(context, sink.name, status)
        return status

    def _cursor(self, name: str) -> SinkStatus:
        with self._database.transaction() as session:
            cursor = session.get(AuditExportCursor, name)
            if cursor is None:
                # A new sink starts at the oldest retained event.
                start = session.execute(select(AuditHead.pruned_below)).scalar_one()
                cursor = AuditExportCursor(
                    sink=name, next_seq=start, failures=0, updated_at=self._clock.now()
                )
                session.add(cursor)
            return SinkStatus(
                name=name, next_seq=cursor.next_seq, failures=cursor.failures, error=cursor.last_error
            )

    def _events_after(self, next_seq: int) -> list[dict[str, Any]]:
        with self._database.read() as session:
            rows = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq >= next_seq)
                .order_by(AuditEvent.seq)
                .limit(self._batch)
            )
            return [EventView.of(row).as_json() for row in rows]

    def _advance(self, context: Context, name: str, status: SinkStatus) -> None:
        recovered = status.failures > 0
        status.failures, status.error = 0, None
        self._retry_at.pop(name, None)
        self._save(context, name, status, state="recovered" if recovered else None)

    def _failed(self, context: Context, name: str, status: SinkStatus, error: ExportError) -> None:
        status.failures += 1
        status.error = error.message
        delay = min(BACKOFF_BASE * 2 ** (status.failures - 1), BACKOFF_MAX)
        status.retry_at = self._retry_at[name] = self._clock.now() + delay
        log.warning(
            "export to %s failed (%d in a row), retrying in %s: %s",
            name,
            status.failures,
            delay,
            error.message,
        )
        # Only the move from healthy to failing is news for the log.
        self._save(context, name, status, state="failing" if status.failures == 1 else None)

    def _save(self, context: Context, name: str, status: SinkStatus, *, state: str | None) -> None:
        """Persist the cursor; a change of the sink's state is an audited action, routine progress is not."""
        if state is None:
            with self._database.transaction() as session:
                self._store(session, name, status.next_seq, status.failures, status.error)
            return
        details = {"sink": name, "state": state, "next_seq": status.next_seq}
        with self._uow.act(context, "audit.export", AUDIT_LOG, details=details) as work:
            self._store(work.session, name, status.next_seq, status.failures, status.error)

    def _store(self, session: Session, name: str, next_seq: int, failures: int, error: str | None) -> None:
        cursor = session.get(AuditExportCursor, name)
        if cursor is None:
            raise ExportError(f"The cursor of sink {name} vanished.")
        # Never move a cursor backwards: two exporters racing must not re-deliver what both sent.
        cursor.next_seq = max(cursor.next_seq, next_seq)
        cursor.failures, cursor.last_error, cursor.updated_at = failures, error, self._clock.now()

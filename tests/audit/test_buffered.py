"""Buffered records (predictions): queued without waiting, visible to every reader of the log, flushed on
close, and failing closed while appends fail."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from bastion.audit import GroupCommitWriter, MerkleAuditLog
from bastion.core.clock import FrozenClock
from bastion.core.durable import wait_durable
from bastion.core.errors import AuditUnavailable
from bastion.store import Database
from bastion.store.tables import AuditEvent
from tests.audit.conftest import record


def stored(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(AuditEvent.request_id).order_by(AuditEvent.seq)))


def test_buffered_records_are_committed_by_flush_and_by_close(database: Database, clock: FrozenClock) -> None:
    writer = GroupCommitWriter(database, MerkleAuditLog())
    writer.enqueue(record(clock, 1))
    writer.flush()
    assert stored(database) == ["req-1"]
    for i in range(2, 6):
        writer.enqueue(record(clock, i))
    writer.close()  # a graceful shutdown loses nothing queued
    assert stored(database) == [f"req-{i}" for i in range(1, 6)]


def test_buffered_appends_fail_closed_while_the_log_fails_and_recover_after(
    database: Database, clock: FrozenClock
) -> None:
    writer = GroupCommitWriter(database, MerkleAuditLog())
    writer.enqueue(record(clock, 1))
    writer.flush()
    with database.transaction() as session:  # a real failure: the log's table is gone
        session.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    writer.enqueue(record(clock, 2))  # queued; its batch fails in the writer thread
    writer.flush()
    pending = writer.enqueue(record(clock, 3))  # the next caller must wait for a durable append ...
    assert pending is not None
    with pytest.raises(AuditUnavailable):  # ... which fails
        wait_durable(pending)
    with database.transaction() as session:
        session.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    pending = writer.enqueue(record(clock, 4))  # durable again (it succeeds) ...
    assert pending is not None and wait_durable(pending) > 0
    assert writer.enqueue(record(clock, 5)) is None  # ... and buffered after that
    writer.close()
    assert stored(database) == ["req-1", "req-4", "req-5"]


def test_a_record_somebody_waits_on_cuts_a_buffered_batchs_linger_short(
    database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A buffered batch gathers without waking the writer per record; a durable append, a flush or a close
    arriving meanwhile is not kept waiting for the linger (here made far longer than the ack timeout)."""
    monkeypatch.setattr("bastion.audit.writer.BUFFERED_LINGER_SECONDS", 600.0)
    writer = GroupCommitWriter(database, MerkleAuditLog())
    writer.enqueue(record(clock, 1))
    assert writer.append(record(clock, 2), timeout=20) > 0  # AuditUnavailable if it waited out the linger
    writer.enqueue(record(clock, 3))
    writer.flush(timeout=20)
    assert stored(database) == ["req-1", "req-2", "req-3"]
    writer.enqueue(record(clock, 4))
    writer.close()  # joins the writer thread: it would hang for the linger
    assert stored(database) == ["req-1", "req-2", "req-3", "req-4"]

"""The audit appender process: buffered records handed over by the server are committed whole and in the
tree, readers see them after a flush, and every way the hand-over can fail falls back to appending
in-process or fails closed — never a record silently dropped by the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bastion.audit import GroupCommitWriter, MerkleAuditLog
from bastion.audit.canonical import EVENT_FIELDS, canonical_bytes, leaf_hash
from bastion.audit.spool import ATOMIC_WRITE, AuditSpool
from bastion.core.clock import FrozenClock
from bastion.core.durable import wait_durable
from bastion.core.errors import AuditUnavailable
from bastion.store import Database
from bastion.store.tables import AuditEvent
from tests.audit.conftest import record
from tests.audit.test_buffered import stored

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spool(database_url: str) -> Iterator[AuditSpool]:
    made = AuditSpool(database_url, linger_s=0.01, restart_after_s=0.2)
    yield made
    made.close()


@pytest.fixture
def writer(database: Database, spool: AuditSpool) -> Iterator[GroupCommitWriter]:
    made = GroupCommitWriter(database, MerkleAuditLog(), spool=spool)
    made.start_spool()
    assert spool.running
    yield made
    made.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0  # a zombie has exited


def wait_until(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        time.sleep(0.02)


def test_records_handed_over_are_committed_whole_in_the_tree(
    writer: GroupCommitWriter, spool: AuditSpool, database: Database, clock: FrozenClock
) -> None:
    records = [record(clock, i) for i in range(1, 41)]
    for item in records:
        assert writer.enqueue(item) is None
    writer.flush()  # the reader's wait reaches through the appender
    with database.read() as session:
        rows = [
            {name: getattr(row, name) for name in (*EVENT_FIELDS, "leaf_hash")}
            for row in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
    assert [row["request_id"] for row in rows] == [f"req-{i}" for i in range(1, 41)]
    assert [row["seq"] for row in rows] == list(range(40))
    for row, item in zip(rows, records, strict=True):
        assert row["occurred_at"] == item.occurred_at  # to the microsecond, zone included
        assert row["details"] == {"i": item.details["i"], "ratio": 0.5}
        assert row["policy_ids"] == ["p1"]
        assert (row["data_categories"], row["source_address"]) == (["pii"], "10.1.2.3")
        assert row["leaf_hash"] == leaf_hash(canonical_bytes(row))  # the leaf commits to what was stored


def test_close_commits_what_was_handed_over(
    database: Database, spool: AuditSpool, clock: FrozenClock
) -> None:
    writer = GroupCommitWriter(database, MerkleAuditLog(), spool=spool)
    writer.start_spool()
    for i in range(1, 6):
        assert writer.enqueue(record(clock, i)) is None
    writer.close()  # no flush: the appender drains its input before it exits
    assert stored(database) == [f"req-{i}" for i in range(1, 6)]
    assert not spool.running


def test_a_record_json_cannot_carry_fails_its_own_caller(
    writer: GroupCommitWriter, database: Database, clock: FrozenClock
) -> None:
    bad = record(clock, 1)
    object.__setattr__(bad, "details", {"score": float("nan")})
    with pytest.raises(AuditUnavailable, match="cannot be stored as JSON"):
        writer.enqueue(bad)
    writer.enqueue(record(clock, 2))
    writer.flush()
    assert stored(database) == ["req-2"]  # the next record, and its batch, are unharmed


def test_a_record_holding_a_secret_is_refused_before_it_is_handed_over(
    writer: GroupCommitWriter, database: Database, clock: FrozenClock
) -> None:
    bad = record(clock, 1)
    object.__setattr__(bad, "details", {"api_key": "s3cr3t-value"})
    with pytest.raises(AuditUnavailable, match="secret"):
        writer.enqueue(bad)
    writer.flush()
    assert stored(database) == []


def test_a_record_too_long_for_one_atomic_write_is_appended_in_process(
    writer: GroupCommitWriter, spool: AuditSpool, database: Database, clock: FrozenClock
) -> None:
    long = record(clock, 1)
    object.__setattr__(long, "details", {"inputs": [[0.125] * 64] * 16})
    assert spool.put(long) is False  # never split across writes, where another could land between halves
    assert writer.enqueue(long) is None  # buffered all the same, by the writer's own thread
    writer.enqueue(record(clock, 2))
    writer.flush()
    assert sorted(stored(database)) == ["req-1", "req-2"]
    assert ATOMIC_WRITE >= 512


def test_records_in_the_pipe_survive_the_server_being_killed(database_url: str, database: Database) -> None:
    """A server SIGKILLed right after handing records over: its appender reads to the end of its input and
    commits them (in-process, buffered records would have been lost)."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from datetime import UTC, datetime
        from bastion.audit.spool import AuditSpool
        from bastion.spine import AuditRecord, Context, Outcome, Principal, PrincipalType, Resource
        spool = AuditSpool({database_url!r}, linger_s=0.5)
        spool.start()
        who = Principal(id="user:gone", type=PrincipalType.USER, auth_method="test")
        for i in range(200):
            item = AuditRecord(datetime.now(UTC), Context(who, request_id=f"gone-{{i}}"), "model.predict",
                               Resource("model", "m"), Outcome.ALLOWED)
            assert spool.put(item)
        print("handed", spool.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL and done.stdout.startswith("handed")
    appender = int(done.stdout.split()[1])
    wait_until(lambda: len(stored(database)) == 200)
    assert sorted(stored(database)) == sorted(f"gone-{i}" for i in range(200))
    wait_until(lambda: not alive(appender))  # and it did not linger after its input ended


def test_a_killed_appender_fails_closed_then_is_started_again(
    writer: GroupCommitWriter, spool: AuditSpool, database: Database, clock: FrozenClock
) -> None:
    writer.enqueue(record(clock, 1))
    writer.flush()
    pid = spool.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not spool.running)
    pending = writer.enqueue(record(clock, 2))  # the server learned: this caller waits for a durable append
    assert pending is not None and wait_durable(pending) >= 0
    wait_until(lambda: spool.running)  # a new appender, after restart_after_s
    assert spool.pid not in (None, pid)
    assert writer.enqueue(record(clock, 3)) is None  # handed over again
    writer.flush()
    assert stored(database) == ["req-1", "req-2", "req-3"]


def test_a_batch_the_appender_cannot_commit_makes_the_server_fail_closed(
    writer: GroupCommitWriter, spool: AuditSpool, database: Database, clock: FrozenClock
) -> None:
    writer.enqueue(record(clock, 1))
    writer.flush()
    with database.transaction() as session:  # a real failure: the log's table is gone
        session.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    assert writer.enqueue(record(clock, 2)) is None  # handed over; its batch fails in the appender
    writer.flush()
    wait_until(lambda: not spool.running)
    pending = writer.enqueue(record(clock, 3))  # the next caller must wait for a durable append ...
    assert pending is not None
    with pytest.raises(AuditUnavailable):  # ... which fails: nobody is told a lost record was kept
        wait_durable(pending)
    with database.transaction() as session:
        session.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    pending = writer.enqueue(record(clock, 4))
    assert pending is not None and wait_durable(pending) > 0
    wait_until(lambda: spool.running)
    assert writer.enqueue(record(clock, 5)) is None
    writer.flush()
    assert stored(database) == ["req-1", "req-4", "req-5"]


def test_an_appender_that_cannot_reach_the_database_leaves_appending_in_process(
    database: Database, clock: FrozenClock
) -> None:
    spool = AuditSpool("postgresql+psycopg://nobody@127.0.0.1:1/none", restart_after_s=60)
    writer = GroupCommitWriter(database, MerkleAuditLog(), spool=spool)
    writer.start_spool()
    assert not spool.running
    assert writer.enqueue(record(clock, 1)) is None  # buffered in-process
    writer.close()
    assert stored(database) == ["req-1"]

"""Concurrent appends stay one consistent tree, and no acknowledged event is lost to SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bastion.app import Bastion
from bastion.core.clock import FrozenClock
from bastion.core.errors import AuditUnavailable
from bastion.spine import AuditRecord
from bastion.store import Database, migrate
from bastion.store.tables import AuditEvent
from tests.audit.conftest import OPERATOR, record

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_writers_get_contiguous_sequence_numbers(system: Bastion, clock: FrozenClock) -> None:
    seqs: list[int] = []
    lock = threading.Lock()
    records = [record(clock, i) for i in range(400)]

    def writer(chunk: list[AuditRecord]) -> None:
        for item in chunk:
            seq = system.writer.append(item)
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=writer, args=(records[n::16],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs) == list(range(400))
    system.trail.checkpoint(OPERATOR())
    assert system.trail.verify(OPERATOR()).ok


def test_concurrent_processes_share_one_tree(database_url: str, tmp_path: Path) -> None:
    """Two writer processes plus in-transaction appends from this one: the head row serialises them all."""
    database = Database(database_url)
    migrate(database)
    workers = [_spawn(database_url, 4) for _ in range(2)]
    try:
        _wait_for_acks(workers[0], 150)
        _wait_for_acks(workers[1], 150)
    finally:
        for worker in workers:
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
            worker.close()
    with database.read() as session:
        seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
    assert seqs == list(range(len(seqs)))
    from bastion.audit.verify import verify_log  # noqa: PLC0415

    with database.read() as session:
        report = verify_log(session, "no checkpoints to check", None)
    assert report.problems == []
    database.dispose()


class _Worker:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.acked: list[tuple[int, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            seq, request_id = line.split()
            self.acked.append((int(seq), request_id))

    def close(self) -> None:
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _spawn(url: str, threads: int) -> _Worker:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.audit.append_worker", url, str(threads)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return _Worker(process)


def _wait_for_acks(worker: _Worker, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(worker.acked) < count:
        if time.monotonic() > deadline or worker.process.poll() is not None:
            pytest.fail(f"worker acknowledged only {len(worker.acked)} events")
        time.sleep(0.01)


def test_no_acknowledged_event_is_lost_after_sigkill(database_url: str) -> None:
    database = Database(database_url)
    migrate(database)
    worker = _spawn(database_url, 8)
    try:
        _wait_for_acks(worker, 500)
    finally:
        worker.process.send_signal(signal.SIGKILL)  # mid-batch, with writes in flight
        worker.process.wait()
        worker.close()
    acked = dict(worker.acked)
    assert len(acked) >= 500
    with database.read() as session:
        stored = dict(session.execute(select(AuditEvent.seq, AuditEvent.request_id)).all())
    missing = {seq: rid for seq, rid in acked.items() if stored.get(seq) != rid}
    assert missing == {}
    assert sorted(stored) == list(range(len(stored)))  # and no hole where an unacknowledged batch died
    database.dispose()


def test_a_record_holding_a_secret_fails_alone(system: Bastion, clock: FrozenClock) -> None:
    good = system.writer.submit(record(clock, 1))
    bad = record(clock, 2)
    bad = AuditRecord(
        **{**{f: getattr(bad, f) for f in bad.__slots__}, "details": {"api_key": "s3cr3t-value"}}
    )
    with pytest.raises(AuditUnavailable):
        system.writer.submit(bad)
    assert good.result(10) >= 0


def test_a_record_json_cannot_carry_fails_alone(system: Bastion, clock: FrozenClock) -> None:
    """A NaN (a model's output in a decision trace) fails its own caller, durable or buffered, instead of the
    batch it would have shared with others."""
    good = system.writer.submit(record(clock, 1))
    bad = record(clock, 2)
    for details in ({"trace": {"probabilities": [float("nan")]}}, {"mixed": {1: "a", "b": 2}}):
        bad = AuditRecord(**{**{f: getattr(bad, f) for f in bad.__slots__}, "details": details})
        with pytest.raises(AuditUnavailable, match="cannot be stored as JSON"):
            system.writer.submit(bad)
        with pytest.raises(AuditUnavailable, match="cannot be stored as JSON"):
            system.writer.enqueue(bad)
    assert good.result(10) >= 0
    assert system.writer.append(record(clock, 3)) > 0

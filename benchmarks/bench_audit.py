"""Audit log benchmark (issue: tamper-evident audit log).

1. Durable appends per second through group commit, with 1, 8 and 64 concurrent writer threads, on SQLite
   (synchronous=FULL) and PostgreSQL (synchronous_commit=on) — against the baseline of one transaction
   (one fsync) per event with a single writer, measured in the same run.
2. Inclusion and consistency proof time at 1M entries (SQLite; O(log n) stored nodes per proof), against
   the baseline of one primary-key lookup of an event.

Run: ``.venv/bin/python -m benchmarks.bench_audit [--entries 1000000] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bastion.audit import GroupCommitWriter, MerkleAuditLog
from bastion.audit.merkle import consistency_path, inclusion_path
from bastion.audit.tree_store import with_nodes
from bastion.spine import AuditRecord, Context, Outcome, Principal, PrincipalType, Resource
from bastion.store import Database, migrate
from bastion.store.tables import AuditEvent

PRINCIPAL = Principal(id="user:bench", type=PrincipalType.USER, auth_method="api_key")
DEFAULT_POSTGRES = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def record(i: int) -> AuditRecord:
    return AuditRecord(
        occurred_at=datetime.now(UTC),
        context=Context(PRINCIPAL, request_id=f"req-{i}", source_address="10.0.0.1", user_agent="bench"),
        action="model.predict",
        resource=Resource("model", "fraud@3"),
        outcome=Outcome.ALLOWED,
        reason="granted",
        policy_ids=("policy-1",),
        data_categories=("pii",),
        details={"latency_ms": 3, "units": 1},
    )


def appends_per_second(database: Database, writers: int, seconds: float) -> float:
    writer = GroupCommitWriter(database, MerkleAuditLog())
    stop = time.monotonic() + seconds
    counts = [0] * writers

    def run(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            writer.append(record(i))
            i += 1
        counts[n] = i

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    writer.close()
    return sum(counts) / elapsed


def one_fsync_per_event(database: Database, seconds: float) -> float:
    log = MerkleAuditLog()
    stop, count, started = time.monotonic() + seconds, 0, time.monotonic()
    while time.monotonic() < stop:
        with database.transaction() as session:
            log.append(session, record(count))
        count += 1
    return count / (time.monotonic() - started)


def writer_capacity(database: Database, count: int = 20_000) -> float:
    """Everything queued at once: batches fill up, so this is the append path's own ceiling."""
    writer = GroupCommitWriter(database, MerkleAuditLog())
    records = [record(i) for i in range(count)]
    started = time.monotonic()
    futures = [writer.submit(item) for item in records]
    for future in futures:
        future.result(120)
    elapsed = time.monotonic() - started
    writer.close()
    return count / elapsed


def throughput(label: str, database: Database, seconds: float) -> None:
    baseline = one_fsync_per_event(database, seconds)
    print(f"  {label:10s} baseline: one transaction per event, 1 writer: {baseline:9,.0f} events/s")
    for writers in (1, 8, 64):
        rate = appends_per_second(database, writers, seconds)
        print(
            f"  {label:10s} group commit, {writers:2d} writers:            {rate:9,.0f} events/s"
            f"   ({rate / baseline:5.1f}x baseline)"
        )
    capacity = writer_capacity(database)
    print(
        f"  {label:10s} group commit, 20k queued at once:      {capacity:9,.0f} events/s"
        f"   ({capacity / baseline:5.1f}x baseline)"
    )


def fresh_postgres(url: str) -> str:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"bastion_bench_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def build_log(database: Database, entries: int) -> None:
    log = MerkleAuditLog()
    batch, done, started = 20_000, 0, time.monotonic()
    while done < entries:
        size = min(batch, entries - done)
        with database.transaction() as session:
            log.append_many(session, [record(done + i) for i in range(size)])
        done += size
    print(
        f"  built {entries:,} entries in {time.monotonic() - started:.0f} s "
        f"({entries / (time.monotonic() - started):,.0f} events/s in 20k-event transactions)"
    )


def timed(samples: int, operation: Callable[[int], object]) -> tuple[float, float]:
    times = []
    for i in range(samples):
        started = time.perf_counter()
        operation(i)
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def proofs(database: Database, entries: int, samples: int = 2000) -> None:
    rng = random.Random(7)
    indices = [rng.randrange(entries) for _ in range(samples)]
    firsts = [rng.randrange(1, entries) for _ in range(samples)]
    with database.read() as session:
        lookup = timed(samples, lambda i: session.get(AuditEvent, indices[i]))
        session.expunge_all()
        inclusion = timed(
            samples, lambda i: with_nodes(session, lambda get: inclusion_path(get, indices[i], entries))
        )
        consistency = timed(
            samples, lambda i: with_nodes(session, lambda get: consistency_path(get, firsts[i], entries))
        )
        depth = len(with_nodes(session, lambda get: inclusion_path(get, indices[0], entries)))
    print(f"  baseline: primary-key lookup of one event:  p50 {lookup[0]:7.0f} us  p99 {lookup[1]:7.0f} us")
    for name, (p50, p99) in (
        (f"inclusion proof ({depth} hashes):", inclusion),
        ("consistency proof to the head:", consistency),
    ):
        print(f"  {name:43s} p50 {p50:7.0f} us  p99 {p99:7.0f} us   ({p50 / lookup[0]:.1f}x lookup)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args([]) if __name__ != "__main__" else parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("Durable appends (each acknowledged only after its transaction committed):")
        sqlite = Database(f"sqlite:///{Path(tmp) / 'throughput.db'}")
        migrate(sqlite)
        throughput("SQLite", sqlite, args.seconds)
        sqlite.dispose()
        try:
            url = fresh_postgres(args.postgres)
        except Exception as error:  # noqa: BLE001 - the benchmark still reports SQLite
            print(f"  PostgreSQL skipped: {type(error).__name__}")
        else:
            postgres = Database(url, pool_size=4)
            migrate(postgres)
            throughput("PostgreSQL", postgres, args.seconds)
            postgres.dispose()
        print(f"Proofs at {args.entries:,} entries (SQLite):")
        big = Database(f"sqlite:///{Path(tmp) / 'proofs.db'}")
        migrate(big)
        build_log(big, args.entries)
        with big.read() as session:
            size = (
                session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
                + 1
            )
        proofs(big, size)
        big.dispose()


if __name__ == "__main__":
    main()

"""Cost of the security spine per operation: an audited, authorized write through ``UnitOfWork.act``
against the same write in a bare transaction (the baseline), on SQLite, measured in the same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import Column, Integer, MetaData, String, Table

from bastion.audit import MerkleAuditLog
from bastion.core.clock import SystemClock
from bastion.policy import CedarAuthorizer, PolicySource, RoleDirectory
from bastion.spine import Context, Principal, PrincipalType, Resource, UnitOfWork
from bastion.store import Database, migrate

ROUNDS = 500
items = Table("bench_items", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(40)))


def _time(operation: Callable[[int], None]) -> list[float]:
    samples = []
    for i in range(ROUNDS):
        started = time.perf_counter()
        operation(i)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(database)
        items.create(database.engine)
        # A user holding the shipped operator role, decided by the Cedar authorizer as in production.
        principal = Principal(
            id="user:bench",
            type=PrincipalType.USER,
            auth_method="bench",
            attributes=MappingProxyType({"roles": ("operator",)}),
        )
        clock = SystemClock()
        authorizer = CedarAuthorizer(PolicySource(database, clock), RoleDirectory(database, clock), clock)
        uow = UnitOfWork(database, authorizer, MerkleAuditLog(), clock)
        context = Context(principal)

        def bare(i: int) -> None:
            with database.transaction() as session:
                session.execute(items.insert().values(name=f"bare{i}"))

        def spine(i: int) -> None:
            with uow.act(context, "secrets.write", Resource("secret", f"item-{i}")) as work:
                work.session.execute(items.insert().values(name=f"spine{i}"))

        bare(-1)
        spine(-1)  # warm both paths
        base, guarded = _time(bare), _time(spine)
        database.dispose()
    for name, samples in (("bare transaction (baseline)", base), ("authorize+act+audit", guarded)):
        ordered = sorted(samples)
        p50, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99)]
        print(f"{name:30s} p50 {p50:8.1f} us   p99 {p99:8.1f} us")
    print(
        f"spine overhead ratio (p50): {statistics.median(guarded) / statistics.median(base):.2f}x "
        f"over {ROUNDS} durable SQLite writes (synchronous=FULL)"
    )


if __name__ == "__main__":
    main()

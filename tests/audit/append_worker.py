"""A separate process that appends audit events from many threads and prints each acknowledgement.

Used by the durability test, which kills it with SIGKILL mid-stream: every line printed here is a promise
that the event is durable. Run as ``python -m tests.audit.append_worker DATABASE_URL THREADS``.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

from bastion.audit import GroupCommitWriter, MerkleAuditLog
from bastion.spine import AuditRecord, Context, Outcome, Principal, PrincipalType, Resource
from bastion.store import Database

PRINCIPAL = Principal(id="user:load", type=PrincipalType.USER, auth_method="test")


def main() -> None:
    url, threads = sys.argv[1], int(sys.argv[2])
    database = Database(url)
    writer = GroupCommitWriter(database, MerkleAuditLog())
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(1_000_000):
            record = AuditRecord(
                occurred_at=datetime.now(UTC),
                context=Context(PRINCIPAL, request_id=f"w{worker}-{i}"),
                action="load.test",
                resource=Resource("load", str(worker)),
                outcome=Outcome.ALLOWED,
            )
            seq = writer.append(record)
            with lock:
                sys.stdout.write(f"{seq} w{worker}-{i}\n")
                sys.stdout.flush()

    pool = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main()

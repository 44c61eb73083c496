"""The audit appender: a process of its own that appends buffered audit records (see ``spool``).

``python -I -m bastion.audit.appender``. Its standard input carries, one JSON document a line: first its
settings (``{"database_url": ..., "linger_s": ...}`` — the URL may hold a password, so it never travels on
the command line or in the environment), then records (``spool.encode_record``) and flush barriers
(``["flush", N]``); the format and its words are defined in ``spool``, beside the side that writes them.
Every linger it takes what has arrived, appends the whole records in one transaction and answers each
barrier among them with ``["flushed", N]`` on standard output once that transaction has committed (so a
barrier waits up to one linger). End of input: what remains is appended and the process exits. A batch
that fails is reported (``["failed", COUNT]``) and the process exits 1: the server appends in-process until
it has started a new one.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from bastion.audit.log import MerkleAuditLog
from bastion.audit.spool import FAILED, FLUSH, FLUSHED, READY, decode_record
from bastion.core.logs import LogFormat, configure_logging
from bastion.spine.interfaces import AuditRecord
from bastion.store.database import Database

log = logging.getLogger(__name__)


class Appender:
    def __init__(self, database: Database, answers: BinaryIO) -> None:
        self._database = database
        self._log = MerkleAuditLog()
        self._answers = answers

    def append(self, lines: list[bytes]) -> None:
        """Append the records among ``lines`` in one transaction, then answer the barriers among them."""
        records: list[AuditRecord] = []
        barriers: list[int] = []
        for line in lines:
            document = json.loads(line)
            if document[0] == FLUSH:
                barriers.append(int(document[1]))
            else:
                records.append(decode_record(document))
        if records:
            try:
                with self._database.transaction() as session:
                    # The gateway screened each record for secrets before handing it over.
                    self._log.append_many(session, records, screened=True)
            except Exception:
                log.exception("audit appender: a batch of %d records failed", len(records))
                self.answer([FAILED, len(records)])
                raise
        for barrier in barriers:
            self.answer([FLUSHED, barrier])

    def answer(self, document: list[Any]) -> None:
        self._answers.write(json.dumps(document).encode() + b"\n")
        self._answers.flush()


def first_line(source: int) -> tuple[bytes, bytearray]:
    """The first line on ``source`` and what came after it (read with ``os.read``: a buffered reader would
    keep records it read ahead where ``arrivals`` cannot see them)."""
    received = bytearray()
    while b"\n" not in received:
        chunk = os.read(source, 65536)
        if not chunk:
            raise SystemExit("audit appender: no settings on standard input")
        received += chunk
    line, _, rest = bytes(received).partition(b"\n")
    return line, bytearray(rest)


def arrivals(source: int, linger: float, pending: bytearray) -> Iterator[list[bytes]]:
    """Every ``linger`` seconds, the whole lines that arrived on ``source`` (non-blocking; the process is
    not woken for each record); at the end of input, the rest, then stop."""
    ended = False
    while not ended:
        time.sleep(linger)
        while True:
            try:
                chunk = os.read(source, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                ended = True
                break
            pending += chunk
        cut = pending.rfind(b"\n") + 1
        if cut:
            yield bytes(pending[:cut]).splitlines()
            del pending[:cut]


def main() -> None:
    configure_logging("WARNING", LogFormat.JSON)
    source = sys.stdin.buffer.fileno()
    line, pending = first_line(source)
    settings = json.loads(line)
    os.set_blocking(source, False)
    try:
        database = Database(settings["database_url"], pool_size=1)
        database.ping()  # not ready until the log is in reach: the server appends in-process meanwhile
    except Exception:  # logged through the redacting handler, not printed raw by the interpreter
        log.exception("audit appender: the database is out of reach")
        sys.exit(1)
    appender = Appender(database, sys.stdout.buffer)
    gc.freeze()  # what start-up built lives as long as the process: a full collection need not walk it
    appender.answer([READY])
    try:
        for lines in arrivals(source, float(settings["linger_s"]), pending):
            appender.append(lines)
    except Exception:  # noqa: BLE001 - reported on the answer stream and logged; the gateway takes over
        sys.exit(1)
    finally:
        database.dispose()


if __name__ == "__main__":
    main()

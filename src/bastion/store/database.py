"""One ``Database`` per process: an engine tuned per dialect and short transactions over it.

SQLite (embedded default) runs in WAL mode with foreign keys on and a busy timeout; every transaction
begins with ``BEGIN IMMEDIATE`` so two writers queue on the write lock instead of deadlocking on a
read-to-write upgrade. PostgreSQL uses a normal connection pool.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVarTuple

from sqlalchemy import Connection, Engine, Row, Select, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from bastion.core.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)

SUPPORTED_BACKENDS = ("sqlite", "postgresql")

Columns = TypeVarTuple("Columns")


class Database:
    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 5) -> None:
        try:
            parsed = make_url(url)
        except exc.ArgumentError as error:
            raise ConfigError("The database URL cannot be parsed.") from error
        if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
            raise ConfigError(
                f"Unsupported database backend '{parsed.get_backend_name()}'.",
                remedy="Use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB.",
            )
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url: URL = parsed
        self.dialect = parsed.get_backend_name()
        self.engine = _create_engine(parsed, busy_timeout_ms, pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reads take a deferred transaction on SQLite: a WAL snapshot that never blocks writers.
        self._read_engine = self.engine.execution_options(bastion_read_only=True)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        with self._translated_errors(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A consistent read-only snapshot that does not block writers; anything written is rolled back."""
        with self._translated_errors(), self._read_sessions() as session:
            session.begin()
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection without an ORM session, for Core statements built once: a few times
        cheaper than ``read``, for the request path's cached records — reloaded every second or so while in
        use, on a thread that holds the GIL against the event loop meanwhile. On SQLite its statements read
        one WAL snapshot; anything written is rolled back."""
        with self._translated_errors(), self._read_engine.connect() as connection:
            yield connection

    def first_row(self, statement: Select[*Columns], **parameters: Any) -> Row[*Columns] | None:
        """The first row of one read-only statement (built once, its values bound as ``parameters``)."""
        with self.snapshot() as connection:
            return connection.execute(statement, parameters).first()

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except exc.OperationalError as error:
            if _is_connectivity(error):
                raise StoreUnavailable("The database is unavailable.") from error
            raise
        except exc.InterfaceError as error:
            raise StoreUnavailable("The database is unavailable.") from error

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless a trivial query succeeds."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise StoreUnavailable("The database is unavailable.") from error

    def dispose(self) -> None:
        self.engine.dispose()


def _is_connectivity(error: exc.OperationalError) -> bool:
    # SQLite reports lock timeouts and disk problems as OperationalError too; those are unavailability
    # as far as a caller is concerned. Anything else (a bad statement) is a bug and stays one.
    message = str(error.orig).lower()
    return any(
        marker in message
        for marker in ("locked", "connection", "server closed", "could not connect", "disk", "unable to open")
    )


def _create_engine(url: URL, busy_timeout_ms: int, pool_size: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, busy_timeout_ms)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def _create_sqlite_engine(url: URL, busy_timeout_ms: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE below is honoured.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # FULL: a committed transaction survives power loss, not just a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get("bastion_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine

"""Engine set-up per dialect, transactions, and unavailability reported as a clear error."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, bindparam, column, select, table, text

from bastion.core.errors import ConfigError, StoreUnavailable
from bastion.store import Database


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}", busy_timeout_ms=1234)
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        db.dispose()


def test_transaction_commits_or_rolls_back_as_a_whole(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("boom")
    with database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    with database.transaction() as session:
        assert session.execute(text("SELECT v FROM t")).scalars().all() == [2]


def test_concurrent_writers_do_not_lose_updates(database: Database) -> None:
    """SQLite writers queue on BEGIN IMMEDIATE instead of failing with 'database is locked'."""
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(20):
                with database.transaction() as session:
                    if database.dialect == "postgresql":
                        session.execute(text("LOCK TABLE counter IN EXCLUSIVE MODE"))
                    n = session.execute(text("SELECT n FROM counter")).scalar_one()
                    session.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.transaction() as session:
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 80


def test_unreachable_postgres_is_store_unavailable() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(StoreUnavailable):
            db.ping()
        with pytest.raises(StoreUnavailable), db.transaction() as session:
            session.execute(text("SELECT 1"))
    finally:
        db.dispose()


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "not a url at all", "oracle://x"])
def test_unsupported_or_garbled_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Database(url)
    assert "password" not in str(raised.value).lower()


def test_plain_postgresql_url_gets_the_psycopg_driver() -> None:
    db = Database("postgresql://u:pw@127.0.0.1/x")
    assert db.url.drivername == "postgresql+psycopg"
    db.dispose()


def _one_value_table(database: Database) -> Select[Any]:
    """A table ``kv`` holding a = 1, and the statement reading the value of key ``k``."""
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)"))
        connection.execute(text("INSERT INTO kv VALUES ('a', 1)"))
    kv = table("kv", column("k"), column("v"))
    return select(kv.c.v).where(kv.c.k == bindparam("k"))


def test_first_row_reads_a_snapshot_beside_an_open_write(database: Database) -> None:
    """The request path's cache reads: one statement, its values bound, never taking the write lock (a
    ``BEGIN IMMEDIATE`` would wait out the busy timeout while the write below is open, then fail)."""
    statement = _one_value_table(database)
    with database.transaction() as session:
        session.execute(text("UPDATE kv SET v = 2 WHERE k = 'a'"))  # open, not committed
        row = database.first_row(statement, k="a")  # a write lock would fail here, "database is locked"
        assert row is not None and row[0] == 1  # the last committed value
    assert database.first_row(statement, k="missing") is None
    row = database.first_row(statement, k="a")
    assert row is not None and row[0] == 2


def test_a_snapshots_statements_read_one_state_on_sqlite(tmp_path: Path) -> None:
    """The role directory reads a principal's groups, then their bindings: one state, not a write between."""
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        statement = _one_value_table(db)
        with db.snapshot() as connection:
            assert connection.execute(statement, {"k": "a"}).scalar() == 1
            with db.transaction() as session:  # committed while the snapshot is open
                session.execute(text("UPDATE kv SET v = 2 WHERE k = 'a'"))
            assert connection.execute(statement, {"k": "a"}).scalar() == 1
        assert db.first_row(statement, k="a") == (2,)
    finally:
        db.dispose()

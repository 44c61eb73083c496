"""Fixtures shared by the whole suite.

``database_url`` is parametrised over SQLite and PostgreSQL, so every store-touching test runs on both;
PostgreSQL tests get a fresh database of their own and are marked ``postgres``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bastion.app import Bastion, build
from bastion.core.clock import Clock, FrozenClock, SystemClock
from bastion.core.settings import load_settings
from bastion.policy import CedarAuthorizer, PolicySource, RoleDirectory
from bastion.store import Database, migrate
from tests.services import POSTGRES_URL, REDIS_URL, require


@pytest.fixture(autouse=True)
def _clean_bastion_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's BASTION_* settings or ./bastion.toml."""
    import os  # noqa: PLC0415

    for key in list(os.environ):
        if key.startswith("BASTION_") and not key.startswith("BASTION_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that configure logging (the CLI does) must not leave handlers behind for the next test."""
    import logging  # noqa: PLC0415

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _create_postgres_database() -> str:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"bastion_t_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require("postgres", POSTGRES_URL, 5432)
    url = _create_postgres_database()
    yield url
    _drop_postgres_database(url)


@pytest.fixture
def redis_url() -> str:
    require("redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'bastion.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    migrate(db)
    yield db
    db.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(SystemClock().now())


@pytest.fixture
def system(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Bastion]:
    """The whole system built from settings, migrated, with a frozen clock."""
    settings = load_settings(overrides={"state_dir": tmp_path / "state", "database_url": database_url})
    built = build(settings, clock=clock)
    migrate(built.database)
    yield built
    built.close()


@pytest.fixture
def client(system: Bastion) -> Iterator[TestClient]:
    """The HTTP API in-process (real routing, middleware and database)."""
    with TestClient(system.api(), raise_server_exceptions=False) as test_client:
        yield test_client


def cedar_authorizer(database: Database, clock: Clock) -> CedarAuthorizer:
    """The production authorizer over ``database`` (migrated), as the composition root builds it."""
    return CedarAuthorizer(PolicySource(database, clock), RoleDirectory(database, clock), clock)


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a real ``bastion`` process: a state directory of its own, the test's database."""
    import os  # noqa: PLC0415

    clean = {key: value for key, value in os.environ.items() if not key.startswith("BASTION_")}
    return {
        **clean,
        "BASTION_STATE_DIR": str(tmp_path / "state"),
        "BASTION_DATABASE_URL": database_url,
        "BASTION_LOG_FORMAT": "json",
        "BASTION_DEMO": "false",  # the demo has a test of its own: test_up.test_fresh_up_serves_the_demo
    }

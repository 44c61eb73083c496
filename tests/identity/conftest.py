from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion, build, local_operator
from bastion.core.clock import FrozenClock
from bastion.core.settings import load_settings
from bastion.policy import local_operator_grants
from bastion.store import migrate


@pytest.fixture
def system(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Bastion]:
    settings = load_settings(overrides={"state_dir": tmp_path / "state", "database_url": database_url})
    built = build(settings, grants=local_operator_grants(local_operator().id), clock=clock)
    migrate(built.database)
    yield built
    built.close()


@pytest.fixture
def client(system: Bastion) -> Iterator[TestClient]:
    with TestClient(system.api(), raise_server_exceptions=False) as test_client:
        yield test_client

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.app import Bastion, build
from bastion.core.settings import load_settings
from bastion.store import migrate


@pytest.fixture
def bastion(tmp_path: Path, database_url: str) -> Iterator[Bastion]:
    settings = load_settings(overrides={"state_dir": tmp_path / "state", "database_url": database_url})
    system = build(settings)
    migrate(system.database)
    yield system
    system.close()


@pytest.fixture
def client(bastion: Bastion) -> Iterator[TestClient]:
    with TestClient(bastion.api(), raise_server_exceptions=False) as test_client:
        yield test_client

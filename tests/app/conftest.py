from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a real ``bastion`` process: a state directory of its own, the test's database."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("BASTION_")}
    return {
        **clean,
        "BASTION_STATE_DIR": str(tmp_path / "state"),
        "BASTION_DATABASE_URL": database_url,
        "BASTION_LOG_FORMAT": "json",
        "BASTION_DEMO": "false",  # the demo has a test of its own: test_up.test_fresh_up_serves_the_demo
    }

"""The suite's own rule for service-backed tests: skip on a laptop, fail under CI."""

from __future__ import annotations

import pytest

from tests.services import require

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def test_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require("postgres", UNREACHABLE, 5432)


def test_missing_service_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        require("postgres", UNREACHABLE, 5432)

"""Reaching the services some tests need, and the rule for when they are missing:
skip with a reason on a developer's machine; fail under CI=true, where they must run."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def require(name: str, url: str, default_port: int) -> None:
    if answers(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if in_ci():
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message} (set BASTION_TEST_{name.upper()}_URL, or start it, to run these tests)")

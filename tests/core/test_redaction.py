"""The second line of defence: secret shapes are masked in logs and refused in audit details."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from bastion.core.logs import LogFormat, configure_logging, request_id_var
from bastion.core.redaction import _ANY_SECRET, MASK, contains_secret, find_secrets, redact

SECRETS = [
    "bst_a1b2c3_" + "Zx9" * 11,
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl",
    "Bearer abcdefghijklmnop1234",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-proj-abcdefghijklmnopqrstuvwxyz",
    "ghp_" + "a" * 36,
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_shapes_are_masked(secret: str) -> None:
    masked = redact(f"before {secret} after")
    assert MASK in masked
    assert secret not in masked
    assert masked.startswith("before ")


@pytest.mark.parametrize(
    "text",
    ["password=hunter2", "api_key: abc123xyz", 'token="qwerty12345"', "postgresql://u:hunter2@db/x"],
)
def test_assignments_and_url_passwords_are_masked(text: str) -> None:
    masked = redact(text)
    assert "hunter2" not in masked and "abc123xyz" not in masked and "qwerty12345" not in masked


@pytest.mark.parametrize(
    "text",
    [
        "PA\u017f\u017fWORD=hunter2",  # the long s: the case-insensitive patterns match it as "s"
        "api_\u212aey: hunter2",  # the Kelvin sign, matched as "k"
        "Bas\u0131\u0307c hunter2hunter2",  # not a match, but must not be skipped unchecked either
        "BAS\u0131C hunter2hunter2",  # the dotless i, matched as "i"
        "SECRET = hunter2",
        "xoxb-hunter2hunter2",
    ],
)
def test_the_literal_prefilter_skips_nothing_the_patterns_match(text: str) -> None:
    """Strings without any of the patterns' literals skip the patterns (cheaply); every string that a pattern
    matches, including through Unicode case folding, still reaches them."""
    assert contains_secret(text) == (_ANY_SECRET.search(text) is not None)
    if _ANY_SECRET.search(text):
        assert "hunter2" not in redact(text)


def test_hashes_and_numbers_are_clean() -> None:
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert find_secrets({"input_sha256": digest, "batch": 3, "latency_ms": 1.5, "labels": {"1": 2}}) == []
    assert redact(digest) == digest


def test_ordinary_text_is_untouched() -> None:
    text = "user alice read audit_log/main from 10.0.0.7 (request 0192-abcd)"
    assert redact(text) == text


def test_find_secrets_walks_nested_values() -> None:
    value = {
        "ok": "fine",
        "nested": [{"note": "Bearer abcdefghijklmnop1234"}],
        "password": "x1y2z3",
        "raw": b"\x00",
        "masked": SecretStr("s"),
    }
    assert sorted(find_secrets(value)) == ["$.masked", "$.nested[0].note", "$.password", "$.raw"]
    assert find_secrets({"password": None, "count": 3}) == []


def test_log_records_are_redacted_in_message_args_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, stream=stream)
    log = logging.getLogger("test.redaction")
    token = request_id_var.set("req-42")
    try:
        log.info("login with %s", SECRETS[0], extra={"header": SECRETS[2]})
        try:
            raise ValueError(f"bad key {SECRETS[3]}")
        except ValueError:
            log.exception("failed")
    finally:
        request_id_var.reset(token)
    output = stream.getvalue()
    for secret in (SECRETS[0], SECRETS[2], SECRETS[3]):
        assert secret not in output
    first = json.loads(output.splitlines()[0])
    assert first["request_id"] == "req-42"
    assert first["level"] == "info"
    assert first["msg"] == f"login with {MASK}"
    assert first["header"] == MASK

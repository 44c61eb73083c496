"""Identifiers: time-ordered UUIDs (RFC 9562 version 7) for events and records, and request ids."""

from __future__ import annotations

import re
import secrets
import time
import uuid

_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def uuid7() -> uuid.UUID:
    """A version-7 UUID: 48-bit Unix milliseconds then 74 random bits, so ids sort by creation time."""
    millis = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    return uuid.UUID(int=value)


def new_request_id() -> str:
    return str(uuid7())


def is_valid_request_id(value: str) -> bool:
    """Whether a caller-supplied request id is safe to echo into logs and audit events."""
    return bool(_REQUEST_ID.fullmatch(value))

"""The bytes a leaf hash commits to: one canonical JSON encoding of every field of an event.

Sorted keys, no insignificant whitespace, UTF-8, times as RFC 3339 UTC with microseconds. The encoding
includes ``seq`` so that moving an event to another position changes its leaf hash. Changing this format
strands every existing log, so it is versioned by ``schema_version`` and covered by golden tests.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

# The columns of audit_events that the leaf commits to, in schema version 1.
EVENT_FIELDS = (
    "seq", "event_id", "schema_version", "occurred_at", "actor_id", "actor_type", "auth_method", "action",
    "resource_type", "resource_id", "outcome", "reason", "policy_ids", "request_id", "source_address",
    "user_agent", "purpose", "data_categories", "details",
)  # fmt: skip


# Built once: json.dumps with keyword arguments constructs a new encoder on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(event: dict[str, Any]) -> bytes:
    """``event`` maps every name in ``EVENT_FIELDS`` to its value (``occurred_at`` as a datetime)."""
    document = {name: event[name] for name in EVENT_FIELDS}
    document["occurred_at"] = format_time(event["occurred_at"])
    return _ENCODER.encode(document).encode()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()

"""Service records (dataclasses) as JSON-ready dicts for the routes' response models: nested records become
dicts, tuples lists, and times ISO 8601 strings — one conversion instead of a hand copy per model."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any


def plain(record: Any) -> dict[str, Any]:
    if not is_dataclass(record) or isinstance(record, type):
        raise TypeError("plain() takes a dataclass instance")
    converted: dict[str, Any] = _convert(asdict(record))
    return converted


def _convert(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _convert(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(item) for item in value]
    return value

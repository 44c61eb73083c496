"""Transforms of a dataset's rows, declared in its schema and applied on ingest or on export: drop,
pseudonymise, encrypt (field-level, through the key manager), mask, redact (PII found by the engine in free
text) and generalise. Each returns new rows; nothing is changed in place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bastion.data.pii import PiiEngine
from bastion.data.pseudonyms import Pseudonymizer
from bastion.data.schema import Transform
from bastion.keys.fields import FieldCipher

Row = dict[str, Any]


@dataclass
class Tools:
    """What the transforms need for one dataset, built by the service that runs them."""

    dataset: str
    cipher: Callable[[], FieldCipher]
    pseudonymizer: Callable[[], Pseudonymizer]
    pii: PiiEngine
    pseudonyms: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, token) -> value


def apply(rows: list[Row], transforms: Iterable[Transform], tools: Tools) -> list[Row]:
    out = [dict(row) for row in rows]
    for transform in transforms:
        name = transform.field
        if transform.op == "drop":
            for row in out:
                row.pop(name, None)
            continue
        convert = _converter(transform, tools)
        for row in out:
            value = row.get(name)
            if value is not None:
                row[name] = convert(value)
    return out


def _converter(transform: Transform, tools: Tools) -> Callable[[Any], Any]:
    name = transform.field
    if transform.op == "pseudonymise":
        pseudonymizer = tools.pseudonymizer()

        def pseudonymise(value: Any) -> str:
            text = _text(value)
            token = pseudonymizer.token(name, text)
            tools.pseudonyms[(name, token)] = text
            return token

        return pseudonymise
    if transform.op == "encrypt":
        cipher = tools.cipher()
        return lambda value: cipher.encrypt(_text(value), context=f"{tools.dataset}.{name}")
    if transform.op == "mask":
        keep = transform.keep if transform.keep is not None else 4
        return lambda value: _mask(_text(value), keep)
    if transform.op == "redact":
        return lambda value: redact(_text(value), tools.pii)
    return lambda value: generalise(value, 1, transform.width, transform.keep)


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _mask(text: str, keep: int) -> str:
    shown = text[-keep:] if keep else ""
    return "*" * (len(text) - len(shown)) + shown


def redact(text: str, engine: PiiEngine) -> str:
    """Every PII finding replaced by its entity type: ``mail me at <EMAIL_ADDRESS>``."""
    parts, position = [], 0
    for result in engine.analyze(text):
        parts.append(text[position : result.start])
        parts.append(f"<{result.entity_type}>")
        position = result.end
    parts.append(text[position:])
    return "".join(parts)


def generalise(value: Any, level: int, width: float | None = None, keep: int | None = None) -> Any:
    """A coarser value, ``level`` steps up its hierarchy (0 = as is): numbers to ranges of
    ``width * 10^(level-1)``, dates to month, year, decade; strings to a shorter prefix. The top of every
    hierarchy is ``*``."""
    if level <= 0 or value is None:
        return value
    if isinstance(value, bool):
        return "*"
    if isinstance(value, int | float):
        size = (width or 10) * 10 ** (level - 1)
        low = math.floor(value / size) * size
        return f"{_number(low)}-{_number(low + size)}" if level < 6 else "*"
    if isinstance(value, date | datetime):
        day = value.date() if isinstance(value, datetime) else value
        return (
            [f"{day.year:04d}-{day.month:02d}", f"{day.year:04d}", f"{day.year // 10}0s"][level - 1]
            if level <= 3
            else "*"
        )
    text = str(value)
    if keep is not None and level == 1:
        return text[:keep] + "*" if len(text) > keep else text
    shown = max(0, len(text) - level)
    return text[:shown] + "*" if shown else "*"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"

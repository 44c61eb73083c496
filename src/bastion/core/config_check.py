"""``bastion config check``: refuse configuration files that hold plaintext secrets.

Secrets belong in the environment (``BASTION_*``), the secrets store, or an HSM — never in a file that gets
copied, committed and backed up. A finding names the key, never the value. The rules follow detect-secrets':
secret-named keys, known secret shapes (``bastion.core.redaction``), credentials inside URLs, and
high-entropy strings (Shannon entropy above 4.5 bits per character for base64-like text, 3.0 for hex).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.core.redaction import contains_secret, is_secret_field
from bastion.core.settings import read_toml

_URL_CREDENTIALS = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^@\s/]+@")
_BASE64ISH = re.compile(r"^[A-Za-z0-9+/_=-]{20,}$")
_HEX = re.compile(r"^[0-9a-fA-F]{20,}$")
_BASE64_LIMIT, _HEX_LIMIT = 4.5, 3.0


@dataclass(frozen=True, slots=True)
class Finding:
    key: str
    rule: str


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


_RULES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("secret-named key with a value", lambda key, _: is_secret_field(key.rsplit(".", 1)[-1])),
    ("credentials inside a URL", lambda _, value: bool(_URL_CREDENTIALS.match(value))),
    ("known secret format", lambda _, value: contains_secret(value)),
    ("high-entropy hex string", lambda _, value: bool(_HEX.match(value)) and entropy(value) > _HEX_LIMIT),
    (
        "high-entropy string",
        lambda _, value: bool(_BASE64ISH.match(value)) and entropy(value) > _BASE64_LIMIT,
    ),
)


def _judge(key: str, value: str) -> str | None:
    if not value:
        return None
    return next((rule for rule, matches in _RULES if matches(key, value)), None)


def _walk(value: Any, path: str) -> list[Finding]:
    if isinstance(value, dict):
        return [
            finding
            for key, item in value.items()
            for finding in _walk(item, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list):
        return [finding for index, item in enumerate(value) for finding in _walk(item, f"{path}[{index}]")]
    if isinstance(value, str):
        rule = _judge(path, value)
        return [Finding(path, rule)] if rule else []
    return []


def check_config_file(path: Path) -> list[Finding]:
    return _walk(read_toml(path), "")

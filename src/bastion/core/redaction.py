"""Recognise and mask secret-shaped strings.

This is the second line of defence: secrets travel as masked types (``pydantic.SecretStr``) and are never
formatted into messages on purpose. These patterns catch the ones that slip through anyway, in log records
and in audit details, by shape: Bastion API keys, JWTs, bearer headers, PEM private keys, cloud provider keys,
credentials inside URLs and ``password=...`` style assignments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

MASK = "[REDACTED]"

_SECRET_SHAPES: tuple[re.Pattern[str], ...] = (
    # PEM private keys, whole block.
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    # Bastion API keys: bst_<public id>_<secret>.
    re.compile(r"\bbst_[A-Za-z0-9]+_[A-Za-z0-9_-]{16,}"),
    # JSON Web Tokens (three base64url segments, header starting with {" encoded).
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Authorization header values.
    re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # AWS access key ids and common provider token prefixes (OpenAI, GitHub, Slack, Google).
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
)

# Credentials inside URLs: keep the scheme and host, mask the password.
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)(?P<secret>[^@\s/]+)(?P<post>@)")
# key=value / key: value where the key names a secret.
_ASSIGNMENT = re.compile(
    r"(?i)(?P<pre>\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|master[_-]?key)"
    r"[\w.-]*[\"']?\s*[:=]\s*[\"']?)(?P<secret>[^\s\"',;&]{3,})"
)
# Field names whose values are secrets whatever they look like.
_SECRET_FIELD = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|master[_-]?key|authorization|cookie)"
)


def _scoped(pattern: re.Pattern[str]) -> str:
    """A pattern's source with its flags scoped to it and its group names dropped, fit to be OR-ed."""
    source = re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern)
    if source.startswith("(?i)"):
        source = f"(?i:{source[4:]})"
    if pattern.flags & re.S:
        source = f"(?s:{source})"
    return source


# One pass to tell whether any shape matches at all: most strings are clean, and scanning them with one
# combined pattern is several times cheaper than trying each pattern in turn.
_ANY_SECRET = re.compile("|".join(_scoped(p) for p in (*_SECRET_SHAPES, _URL_PASSWORD, _ASSIGNMENT)))

# A literal that every string any pattern above matches must contain, case-folded: the patterns' own
# literals (``key`` stands for api/private/master key, ``passw`` for password and passwd). Strings without
# one — hashes, ids, numbers, most prose — are clean without running the patterns, whose cost grows with the
# square of a long run of word characters (a SHA-256 hex digest: ~17 µs; this check: ~1 µs).
_HINTS = (
    "-----begin", "bst_", "eyj", "bearer", "basic", "akia", "asia", "sk-", "ghp_", "gho_", "ghu_", "ghs_",
    "ghr_", "xox", "aiza", "://", "passw", "secret", "token", "key",
)  # fmt: skip


def _may_hold_secret(text: str) -> bool:
    # Case-insensitive patterns also match some non-ASCII letters: casefold maps them to the ASCII letter
    # (the long s to "s", the Kelvin sign to "k"), except the dotless i, which the patterns' "i" matches too.
    folded = text.lower() if text.isascii() else text.casefold().replace("\u0131", "i")
    return any(hint in folded for hint in _HINTS)


def redact(text: str) -> str:
    """Return ``text`` with every secret-shaped substring replaced by a mask."""
    if not _may_hold_secret(text):
        return text
    for pattern in _SECRET_SHAPES:
        text = pattern.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['pre']}{MASK}{m['post']}", text)
    return _ASSIGNMENT.sub(lambda m: f"{m['pre']}{MASK}", text)


def contains_secret(text: str) -> bool:
    return _may_hold_secret(text) and _ANY_SECRET.search(text) is not None


@lru_cache(maxsize=4096)  # field names repeat (every audit record of an action has the same keys)
def is_secret_field(name: str) -> bool:
    return bool(_SECRET_FIELD.search(name))


_CLEAN_SCALARS = frozenset({int, float, bool, type(None)})


def find_secrets(value: Any, path: str = "$") -> list[str]:
    """Paths inside a JSON-like value that hold, or are named like, a secret. Empty when clean."""
    found: list[str] = []
    if type(value) in _CLEAN_SCALARS:
        pass  # numbers and null hold no secret (checked first: most values of an audit record are these)
    elif isinstance(value, str):
        if contains_secret(value):
            found.append(path)
    elif type(value) is dict or isinstance(value, Mapping):  # the exact type first: an ABC check is slow
        for key, item in value.items():
            child = f"{path}.{key}"
            if is_secret_field(str(key)) and item not in (None, "", MASK):
                found.append(child)
            else:
                found.extend(find_secrets(item, child))
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, item in enumerate(value):
            found.extend(find_secrets(item, f"{path}[{index}]"))
    elif isinstance(value, bytes | bytearray):
        found.append(path)  # raw bytes have no place in a record meant for people; store a hash instead
    elif hasattr(value, "get_secret_value"):
        found.append(path)
    return found

"""API key format and hashing.

A key is ``bst_<id>_<secret>``: a 16-character public id (lowercase base32, used to find the record) and a
43-character secret (256 random bits, base64url). Only HMAC-SHA-256(pepper, id ":" secret) is stored; the
pepper is a server secret kept in the secrets store, so a stolen database alone cannot confirm guesses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "bst"
_TOKEN = re.compile(r"^bst_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str = field(repr=False)


def new_key() -> tuple[ParsedKey, str]:
    """A fresh key: its parts, and the full token to hand out once."""
    key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return ParsedKey(key_id, secret), f"{PREFIX}_{key_id}_{secret}"


def parse(token: str) -> ParsedKey | None:
    match = _TOKEN.fullmatch(token)
    return ParsedKey(match.group(1), match.group(2)) if match else None


def secret_hash(pepper: bytes, key_id: str, secret: str) -> bytes:
    return hmac.new(pepper, f"{key_id}:{secret}".encode(), hashlib.sha256).digest()

"""Pseudonyms: keyed HMAC-SHA-256 tokens, the same for the same value under the same key and field, and
different under another key or field. The HMAC key of a field is derived (HKDF) from the dataset key's
field-key material, so it never leaves the key manager's control in usable form for long, and the token says
nothing without it. Re-identification is a separate, authorized and audited look-up (``DatasetRegistry``)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "ps_"


class Pseudonymizer:
    def __init__(self, material: bytes, dataset: str) -> None:
        self._material, self._dataset = material, dataset
        self._keys: dict[str, bytes] = {}

    def _key(self, field: str) -> bytes:
        key = self._keys.get(field)
        if key is None:
            info = b"bastion-pseudonym-v1|" + self._dataset.encode() + b"|" + field.encode()
            key = self._keys[field] = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(self._material)
        return key

    def token(self, field: str, value: str) -> str:
        digest = hmac.new(self._key(field), value.encode(), hashlib.sha256).digest()
        return PREFIX + base64.b32encode(digest[:20]).decode().lower().rstrip("=")

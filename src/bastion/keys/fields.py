"""Field-level encryption of single values (SSNs, emails, any PII column).

Tokens are text, safe in any column: ``bf1.`` + base64url(mode (1) || key version (4) || payload).
- randomized (default): AES-256-GCM, payload = nonce (12) || ciphertext || tag. Equal values encrypt
  differently, so nothing leaks through equality.
- deterministic: AES-SIV (RFC 5297), payload = synthetic IV || ciphertext. Equal values give equal tokens
  under the same key version, so the column stays joinable and indexable — and reveals equality, which is
  the price; use it only where a join is needed. After a rotation new tokens use the new version, so joins
  need values re-encrypted (``reencrypt``) under one version.
The key version inside each token means rotation needs no flag day: old tokens decrypt under their version.
Each token is bound to a ``context`` (e.g. ``"patients.ssn"``) so a token moved to another column fails.

The per-version field keys are random, wrapped by that version of the key-encryption key, stored with the
version, and unwrapped once per process (an audited ``keys.decrypt``), then cached.
"""

from __future__ import annotations

import base64
import binascii
import csv
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

from bastion.keys.errors import CryptoError
from bastion.keys.manager import KeyManager
from bastion.spine.context import Context

PREFIX = "bf1."
_RANDOMIZED, _DETERMINISTIC = 1, 2


class FieldCipher:
    def __init__(self, keys: KeyManager, context: Context, key_name: str) -> None:
        self._keys = keys
        self._context = context
        self._key_name = key_name
        self._cache: dict[int, tuple[AESGCM, AESSIV]] = {}
        self._primary: int | None = None

    def _ciphers(self, version: int | None) -> tuple[int, AESGCM, AESSIV]:
        if version is None and self._primary is not None:
            version = self._primary
        if version is None or version not in self._cache:
            resolved, material = self._keys.field_keys(self._context, self._key_name, version)
            self._cache[resolved] = (AESGCM(material[:32]), AESSIV(material[32:]))
            if version is None:
                self._primary = resolved
            version = resolved
        aead, siv = self._cache[version]
        return version, aead, siv

    def encrypt(self, value: str, context: str = "", *, deterministic: bool = False) -> str:
        version, aead, siv = self._ciphers(None)
        data, bound = value.encode(), _bound(context)
        if deterministic:
            payload = siv.encrypt(data, [bound])
        else:
            nonce = secrets.token_bytes(12)
            payload = nonce + aead.encrypt(nonce, data, bound)
        mode = _DETERMINISTIC if deterministic else _RANDOMIZED
        token = bytes([mode]) + struct.pack(">I", version) + payload
        return PREFIX + base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decrypt(self, token: str, context: str = "") -> str:
        try:
            if not token.startswith(PREFIX):
                raise ValueError("not a field token")
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :] + "=" * (-len(token) % 4))
            mode, (version,) = raw[0], struct.unpack(">I", raw[1:5])
            _, aead, siv = self._ciphers(version)
            payload, bound = raw[5:], _bound(context)
            if mode == _RANDOMIZED:
                return aead.decrypt(payload[:12], payload[12:], bound).decode()
            if mode == _DETERMINISTIC:
                return siv.decrypt(payload, [bound]).decode()
            raise ValueError("unknown mode")
        except (
            ValueError,
            IndexError,
            struct.error,
            binascii.Error,
            InvalidTag,
            UnicodeDecodeError,
        ) as error:
            raise CryptoError from error

    def reencrypt(self, token: str, context: str = "", *, deterministic: bool = False) -> str:
        """The same value under the current primary version (after a rotation)."""
        return self.encrypt(self.decrypt(token, context), context, deterministic=deterministic)


def _bound(context: str) -> bytes:
    return b"bastion-field-v1|" + context.encode()


def encrypt_rows(
    cipher: FieldCipher,
    rows: Iterable[dict[str, str]],
    columns: Iterable[str],
    *,
    table: str = "",
    deterministic: Iterable[str] = (),
) -> Iterator[dict[str, str]]:
    """Encrypt chosen columns of dict rows (CSV, JSON records, a DataFrame's ``to_dict('records')``)."""
    chosen, joinable = set(columns), set(deterministic)
    for row in rows:
        yield {
            name: (
                cipher.encrypt(value, f"{table}.{name}", deterministic=name in joinable)
                if name in chosen and value != ""
                else value
            )
            for name, value in row.items()
        }


def decrypt_rows(
    cipher: FieldCipher, rows: Iterable[dict[str, str]], columns: Iterable[str], *, table: str = ""
) -> Iterator[dict[str, str]]:
    chosen = set(columns)
    for row in rows:
        yield {
            name: (cipher.decrypt(value, f"{table}.{name}") if name in chosen and value != "" else value)
            for name, value in row.items()
        }


def encrypt_csv(
    cipher: FieldCipher,
    source: Path,
    target: Path,
    columns: Iterable[str],
    *,
    table: str,
    deterministic: Iterable[str] = (),
) -> None:
    _csv(
        source,
        target,
        lambda rows: encrypt_rows(cipher, rows, columns, table=table, deterministic=deterministic),
    )


def decrypt_csv(
    cipher: FieldCipher, source: Path, target: Path, columns: Iterable[str], *, table: str
) -> None:
    _csv(source, target, lambda rows: decrypt_rows(cipher, rows, columns, table=table))


def _csv(
    source: Path, target: Path, transform: Callable[[Iterable[dict[str, str]]], Iterator[dict[str, str]]]
) -> None:
    with (
        source.open(newline="", encoding="utf-8") as src,
        target.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
        writer.writeheader()
        writer.writerows(transform(reader))

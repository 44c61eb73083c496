"""Signed tree heads in the C2SP tlog-checkpoint / signed-note text format, signed with Ed25519.

Until the key manager lands, the signing key is a PKCS#8 file in the state directory with mode 0600
(``CheckpointSigner.from_file``). The verifier key is published as ``<origin>+<key id hex>+<base64>``
(``bastion audit key``); auditors pin it, and the witness pins it on first publication.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.core.errors import ConfigError

_ED25519 = 0x01
DASH = "\u2014"


def checkpoint_body(origin: str, size: int, root_hash: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode()}\n"


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root_hash: bytes
    note: str
    created_at: datetime


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def from_file(cls, path: Path) -> CheckpointSigner:
        """Load the key, creating it (0600, atomically) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"The checkpoint signing key {path} is readable by others.", remedy=f"chmod 600 {path}"
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as error:
            raise ConfigError(f"The checkpoint signing key {path} is unreadable.") from error
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"The checkpoint signing key {path} is not an Ed25519 key.")
        return cls(key)

    def verifier_key(self, origin: str) -> str:
        encoded = base64.b64encode(bytes([_ED25519]) + self.public_bytes).decode()
        return f"{origin}+{key_id(origin, self.public_bytes).hex()}+{encoded}"

    def sign(self, origin: str, size: int, root_hash: bytes) -> str:
        body = checkpoint_body(origin, size, root_hash)
        signature = key_id(origin, self.public_bytes) + self._key.sign(body.encode())
        return f"{body}\n{DASH} {origin} {base64.b64encode(signature).decode()}\n"

"""Signed tree heads in the C2SP tlog-checkpoint / signed-note text format, signed with Ed25519.

The signing key is held by whatever implements ``CheckpointSigner``: in a running Bastion, the key manager
(``bastion.app.adapters.KeyManagerCheckpointSigner``: the local sealed keyring or an HSM). The verifier key is
published as ``<origin>+<key id hex>+<base64>`` (``bastion audit key``); auditors pin it, and the witness pins
it on first publication.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_ED25519 = 0x01
DASH = "\u2014"


class CheckpointSigner(Protocol):
    def public_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """A raw Ed25519 signature over ``data``."""
        ...


def checkpoint_body(origin: str, size: int, root_hash: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode()}\n"


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ED25519]) + public_key).digest()[:4]


def verifier_key(signer: CheckpointSigner, origin: str) -> str:
    public = signer.public_bytes()
    return f"{origin}+{key_id(origin, public).hex()}+{base64.b64encode(bytes([_ED25519]) + public).decode()}"


def sign_checkpoint(signer: CheckpointSigner, origin: str, size: int, root_hash: bytes) -> str:
    body = checkpoint_body(origin, size, root_hash)
    signature = key_id(origin, signer.public_bytes()) + signer.sign(body.encode())
    return f"{body}\n{DASH} {origin} {base64.b64encode(signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root_hash: bytes
    note: str
    created_at: datetime


class InMemorySigner:
    """An Ed25519 key held in memory: for tools and tests that stand outside a running Bastion."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        self._key = private_key or Ed25519PrivateKey.generate()

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

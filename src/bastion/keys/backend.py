"""The interface every key backend implements: operations on key material it holds and never reveals.

Callers outside ``bastion.keys`` never see this: they use ``KeyManager`` and the recipes (``envelope``,
``fields``). A backend raises ``CryptoError`` for any failed unwrap or bad input ciphertext, and
``KeyBackendUnavailable`` when it cannot be reached.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from bastion.keys.model import KeyAlgorithm


class KeyBackend(Protocol):
    name: str

    def generate(self, algorithm: KeyAlgorithm, label: str) -> str:
        """Create new key material inside the backend; return its opaque reference."""
        ...

    def wrap(self, ref: str, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM under the key ``ref``: returns nonce || ciphertext || tag."""
        ...

    def unwrap(self, ref: str, wrapped: bytes, aad: bytes) -> bytes: ...

    def sign(self, ref: str, algorithm: KeyAlgorithm, data: bytes) -> bytes:
        """DER-encoded ECDSA, or raw Ed25519, over ``data``."""
        ...

    def public_key(self, ref: str) -> PublicKeyTypes: ...

    def mac(self, ref: str, data: bytes) -> bytes: ...

    def destroy(self, ref: str) -> None:
        """Erase the material irrecoverably (crypto-shredding). Idempotent."""
        ...

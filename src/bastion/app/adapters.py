"""Adapters the composition root plugs between sibling subsystems, so neither imports the other."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from bastion.keys.errors import KeyNotFound
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyAlgorithm, KeyPurpose
from bastion.policy.defaults import CHECKPOINT_KEY
from bastion.spine.context import Context


class KeyManagerCheckpointSigner:
    """Audit checkpoints signed by an Ed25519 key in the key manager (local keyring or HSM), as the system
    principal, whose grants cover this one key. The key is created on first use. Rotating it changes the
    verifier key that the witness pinned: the witness will then refuse new checkpoints until re-pinned."""

    def __init__(self, keys: KeyManager, context: Context, name: str = CHECKPOINT_KEY) -> None:
        self._keys, self._context, self._name = keys, context, name
        self._public: bytes | None = None

    def public_bytes(self) -> bytes:
        if self._public is None:
            try:
                pem = self._keys.public_key_pem(self._context, self._name)
            except KeyNotFound:
                self._keys.create(self._context, self._name, KeyPurpose.SIGN, KeyAlgorithm.ED25519)
                pem = self._keys.public_key_pem(self._context, self._name)
            public = serialization.load_pem_public_key(pem)
            self._public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self._public

    def sign(self, data: bytes) -> bytes:
        self.public_bytes()  # make sure the key exists
        return self._keys.sign(self._context, self._name, data)[1]

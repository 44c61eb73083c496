"""Reading a stored dataset version back: decrypted into an owner-only workspace, parsed, and gone from disk
before the rows are used. A version whose ciphertext fails authentication is refused, never half-read."""

from __future__ import annotations

from typing import Any

from bastion.core.errors import InvalidInput
from bastion.data.ingest import read_canonical
from bastion.keys.errors import CryptoError
from bastion.keys.vault import ObjectVault
from bastion.spine.context import Context


def load_rows(vault: ObjectVault, context: Context, version_id: str, ref: str) -> list[dict[str, Any]]:
    with vault.workspace() as work:
        plain = work / "canonical.jsonl"
        try:
            vault.decrypt_into(context, version_id, plain)
        except CryptoError:
            raise InvalidInput(f"{ref} failed its integrity check and was not read.") from None
        try:
            return read_canonical(plain)
        finally:
            plain.unlink()

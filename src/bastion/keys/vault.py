"""Where stored objects live (model versions, dataset versions): encrypted at rest, each under a key of its
own, plaintext only in owner-only temporary workspaces that are removed when the work is done.

Each object gets its own key in the key manager (``bastion/owned/<namespace>/<id>``, owned by the system,
which a shipped policy lets use only the keys it owns). Destroying that key crypto-shreds the object: any
copy of the ciphertext — in a backup, on a stolen disk — becomes unreadable. An archive copy, when one is
kept, is re-encrypted under the archive key first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from bastion.core.errors import InvalidInput
from bastion.keys.envelope import decrypt_file, encrypt_file
from bastion.keys.errors import KeyNotFound
from bastion.keys.manager import SYSTEM_OWNED_PREFIX, KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine.context import Context

_STALE_S = 24 * 3600


class ObjectVault:
    def __init__(
        self, keys: KeyManager, root: Path, system: Context, namespace: str, archive_key: str | None = None
    ) -> None:
        self._keys, self._root, self._system, self._archive_key = keys, root, system, archive_key
        self._namespace = namespace
        self._blobs, self._archive, self._scratch = root / "blobs", root / "archive", root / "tmp"

    def _as_system(self, context: Context) -> Context:
        """Key operations run as the system, under the caller's request id so the audit trail joins up."""
        return replace(self._system, request_id=context.request_id)

    def key_name(self, object_id: str) -> str:
        return f"{SYSTEM_OWNED_PREFIX}{self._namespace}/{object_id}"

    @contextmanager
    def workspace(self) -> Iterator[Path]:
        """A fresh 0700 directory for plaintext, removed on the way out whatever happens."""
        for directory in (self._root, self._scratch):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep_stale()
        path = Path(tempfile.mkdtemp(prefix="work-", dir=self._scratch))  # mkdtemp creates it 0700
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _sweep_stale(self) -> None:
        """Workspaces left by a process that was killed: removed once they are a day old."""
        cutoff = time.time() - _STALE_S
        for entry in self._scratch.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue

    def blob(self, object_id: str) -> Path:
        return self._blobs / f"{object_id}.bste"

    def store(self, context: Context, object_id: str, plaintext: Path) -> str:
        """Encrypt ``plaintext`` under a new key of its own; returns the key's name."""
        system = self._as_system(context)
        name = self.key_name(object_id)
        self._keys.create(system, name, KeyPurpose.ENCRYPT)
        self._blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.blob(object_id)
        try:
            encrypt_file(self._keys, system, name, plaintext, target, object_id=object_id)
            target.chmod(0o600)
        except BaseException:
            self.shred(context, object_id, name)
            raise
        return name

    def decrypt_into(self, context: Context, object_id: str, target: Path) -> None:
        """Decrypt a stored version to ``target`` (inside a workspace). Any tampering with the ciphertext
        raises ``CryptoError`` and is audited by the key manager (the envelope header names its key)."""
        decrypt_file(self._keys, self._as_system(context), self.blob(object_id), target, object_id=object_id)

    def archive(self, context: Context, object_id: str) -> None:
        """Re-encrypt an object under the archive key before its own key is destroyed."""
        if self._archive_key is None:
            raise InvalidInput("This store keeps no archive copies.")
        system = self._as_system(context)
        try:
            self._keys.describe(system, self._archive_key)
        except KeyNotFound:
            self._keys.create(system, self._archive_key, KeyPurpose.ENCRYPT)
        self._archive.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.workspace() as work:
            plain = work / "artifact"
            self.decrypt_into(context, object_id, plain)
            target = self._archive / f"{object_id}.bste"
            encrypt_file(self._keys, system, self._archive_key, plain, target, object_id=object_id)
            target.chmod(0o600)

    def shred(self, context: Context, object_id: str, key_name: str) -> None:
        """Destroy the object's key, then remove its ciphertext: what is left anywhere is unreadable."""
        with suppress(KeyNotFound):  # never created (the store failed before) or already gone
            self._keys.destroy(self._as_system(context), key_name)
        with suppress(FileNotFoundError):
            os.unlink(self.blob(object_id))

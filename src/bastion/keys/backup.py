"""``bastion backup create`` / ``restore``: an encrypted, self-describing copy of the embedded state.

A backup is a tar with three members:
- ``backup.json`` — format, creation time, schema revision, and the key-backend reference of the key that
  wraps the payload (a name, not a secret);
- ``keyring.bks`` — the local keyring exactly as on disk: already sealed under the master key, which is *not*
  in the backup (keep it apart — that separation is the point);
- ``payload.bste`` — an envelope (``bastion.keys.envelope``) under the ``bastion/backup`` key holding a tar
  of a consistent SQLite snapshot (the online backup API), the audit witness and the local CA.
Plaintext exists only in a 0700 temporary directory that is removed afterwards. Restoring needs the master
key, refuses a non-empty target, and checks every member name (no absolute paths, no ``..``, no links).

Scope: the embedded deployment (SQLite, local key backend). PostgreSQL has its own tools (pg_dump); a PKCS#11
token is backed up with the HSM's own procedures.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.core.errors import ConfigError, Conflict, InvalidInput
from bastion.keys.envelope import decrypt_file, encrypt_file
from bastion.keys.errors import CryptoError, KeyNotFound
from bastion.keys.local import LocalBackend, MasterKeySource
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import Key, KeyVersion

BACKUP_KEY = "bastion/backup"
FORMAT = "bastion-backup-1"
OBJECT_ID = "bastion-backup"
# State files besides the database: the audit witness and the local CA.
STATE_FILES = (
    "audit/witness.jsonl",
    "tls/ca.pem",
    "tls/ca-key.pem",
    "tls/server.pem",
    "tls/server-key.pem",
)


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    created_at: datetime
    schema_revision: str
    files: tuple[str, ...]


def create_backup(
    uow: UnitOfWork,
    keys: KeyManager,
    clock: Clock,
    context: Context,
    *,
    state_dir: Path,
    database_file: Path,
    schema_revision: str,
    target: Path,
) -> BackupReport:
    if target.exists():
        raise Conflict(f"{target} exists; choose a new file for the backup.")
    try:
        keys.describe(context, BACKUP_KEY)
    except KeyNotFound:
        keys.create(context, BACKUP_KEY, KeyPurpose.ENCRYPT)
    with uow.act(
        context, "backup.create", Resource("state", "main"), details={"target": target.name}
    ) as work:
        ref = work.session.execute(
            select(KeyVersion.backend_ref)
            .join(Key, Key.name == KeyVersion.key_name)
            .where(KeyVersion.key_name == BACKUP_KEY, KeyVersion.version == Key.primary_version)
        ).scalar_one()
    now = clock.now()
    with tempfile.TemporaryDirectory(prefix="bastion-backup-") as scratch:
        root = Path(scratch)
        root.chmod(0o700)
        inner = root / "state"
        inner.mkdir(mode=0o700)
        _snapshot_sqlite(database_file, inner / "bastion.db")
        included = ["bastion.db"]
        for name in STATE_FILES:
            source = state_dir / name
            if source.exists():
                (inner / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                shutil.copy2(source, inner / name)
                included.append(name)
        payload_tar = root / "payload.tar"
        with tarfile.open(payload_tar, "w") as archive:
            for name in included:
                archive.add(inner / name, arcname=name)
        payload = root / "payload.bste"
        encrypt_file(keys, context, BACKUP_KEY, payload_tar, payload, OBJECT_ID)
        manifest = root / "backup.json"
        manifest.write_text(
            json.dumps(
                {
                    "format": FORMAT,
                    "created_at": now.isoformat(),
                    "schema": schema_revision,
                    "key": BACKUP_KEY,
                    "key_ref": ref,
                    "files": included,
                }
            )
        )
        with tarfile.open(target, "x") as archive:
            archive.add(manifest, arcname="backup.json")
            archive.add(state_dir / "keyring.bks", arcname="keyring.bks")
            archive.add(payload, arcname="payload.bste")
    target.chmod(0o600)
    return BackupReport(target, now, schema_revision, tuple(included))


def _snapshot_sqlite(source: Path, target: Path) -> None:
    """A consistent copy while the server may be writing (SQLite's online backup API)."""
    live, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()


class _BootstrapUnwrapper:
    """Before the database exists again, the backup key is found by the reference in the manifest."""

    def __init__(self, backend: LocalBackend, ref: str) -> None:
        self._backend, self._ref = backend, ref

    def unwrap(self, context: Context, name: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        if name != BACKUP_KEY:
            raise CryptoError
        return self._backend.unwrap(self._ref, wrapped, aad)

    def report_failure(self, context: Context, name: str, reason: str, details: dict[str, object]) -> None:
        """Nothing to record into yet; the CLI reports the failure and nothing is restored."""


def _safe_members(archive: tarfile.TarFile, allowed: set[str] | None = None) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for member in members:
        path = PurePosixPath(member.name)
        if (
            path.is_absolute()
            or ".." in path.parts
            or not member.isfile()
            or (allowed is not None and member.name not in allowed)
        ):
            raise InvalidInput(
                f"The backup contains an unexpected member {member.name!r}; refusing to restore."
            )
    return members


def restore_backup(source: Path, state_dir: Path, master: MasterKeySource, context: Context) -> list[str]:
    """Unpack ``source`` into an empty ``state_dir``; returns the restored files."""
    if state_dir.exists() and any(state_dir.iterdir()):
        raise Conflict(f"{state_dir} is not empty; restore into a new state directory.")
    with tempfile.TemporaryDirectory(prefix="bastion-restore-") as scratch:
        root = Path(scratch)
        root.chmod(0o700)
        try:
            with tarfile.open(source, "r:") as archive:
                _safe_members(archive, {"backup.json", "keyring.bks", "payload.bste"})
                archive.extractall(root, filter="data")
            manifest = json.loads((root / "backup.json").read_text())
        except (tarfile.TarError, OSError, ValueError) as error:
            raise InvalidInput("This is not a readable Bastion backup.") from error
        if manifest.get("format") != FORMAT:
            raise InvalidInput("This is not a Bastion backup this version can read.")
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keyring = state_dir / "keyring.bks"
        shutil.copy2(root / "keyring.bks", keyring)
        backend = LocalBackend(keyring, master)
        try:
            backend.check()
        except ConfigError:
            keyring.unlink()
            raise
        payload_tar = root / "payload.tar"
        decrypt_file(
            _BootstrapUnwrapper(backend, str(manifest["key_ref"])),
            context,
            root / "payload.bste",
            payload_tar,
            OBJECT_ID,
        )
        with tarfile.open(payload_tar, "r:") as archive:
            allowed = {"bastion.db", *STATE_FILES}
            names = [member.name for member in _safe_members(archive, allowed)]
            archive.extractall(state_dir, filter="data")
        for name in names:
            (state_dir / name).chmod(0o600)
    return ["keyring.bks", *names]

"""Loading a stored model version — for serving, evaluation or download — only when it is safe to.

A version is handed out (as plaintext in an owner-only workspace that is removed afterwards) only if it is in
a loadable stage, its scan was clean (or a policy accepted it as unscannable), its ciphertext authenticates,
and its bytes verify against the registry's OMS signature and registered digest. Any failure refuses the load
and writes the reason to the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bastion.core.errors import VerificationFailed
from bastion.keys.errors import CryptoError
from bastion.keys.manager import KeyManager
from bastion.keys.vault import ObjectVault
from bastion.models.errors import LoadRefused
from bastion.models.records import LOADABLE, VersionInfo, resource, version_info, version_row
from bastion.models.signing import verify_model
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import ModelVersionRow


@dataclass(frozen=True, slots=True)
class LoadedModel:
    path: Path  # the verified plaintext artifact, valid inside the ``open`` block only
    info: VersionInfo


class ModelLoader:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        vault: ObjectVault,
        keys: KeyManager,
        system: Context,
        signing_key: str,
    ) -> None:
        self._uow, self._database, self._vault = uow, database, vault
        self._keys, self._system, self._signing_key = keys, system, signing_key

    @contextmanager
    def open(
        self, context: Context, name: str, version: int | None, *, action: str = "models.load"
    ) -> Iterator[LoadedModel]:
        with self._database.read() as session:
            target = resource(session, name, version)
        self._uow.authorize(context, action, target)
        with self._database.read() as session:
            row = version_row(session, name, version)
            info = version_info(session, row)
            session.expunge(row)
        problem = self.unloadable_reason(row)
        if problem:
            self._refuse(context, action, target, info, problem)
        with self._vault.workspace() as work:
            path = work / row.filename
            problem = self.verify_into(context, row, path)
            if problem:
                self._refuse(context, action, target, info, problem)
            details = {"version": info.version, "sha256": info.sha256, "stage": info.stage}
            with self._uow.act(context, action, target, details=details):
                pass
            yield LoadedModel(path, info)

    @staticmethod
    def unloadable_reason(row: ModelVersionRow) -> str | None:
        if row.stage not in LOADABLE:
            return f"the version is {row.stage}"
        if row.scan_verdict != "clean" and not row.scan_accepted_by:
            return f"the scan verdict is {row.scan_verdict}"
        if row.signature is None or row.key_name is None or row.signing_key_version is None:
            return "the version is not signed"
        return None

    def verify_into(self, context: Context, row: ModelVersionRow, path: Path) -> str | None:
        """Decrypt the version to ``path`` and check it against its signature; the reason if it fails."""
        try:
            self._vault.decrypt_into(context, row.id, path)
        except (CryptoError, FileNotFoundError):
            return "the stored ciphertext is missing or failed authentication"
        if row.signature is None or row.signing_key_version is None:
            return "the version is not signed"
        public = self._keys.public_key_pem(
            replace(self._system, request_id=context.request_id), self._signing_key, row.signing_key_version
        )
        try:
            manifest = verify_model(path, row.signature, public)
        except VerificationFailed as error:
            return f"signature check failed: {error.message}"
        if manifest.resources != ((".", row.sha256),):
            return "the signed digest differs from the registered one"
        return None

    def _refuse(
        self, context: Context, action: str, target: Resource, info: VersionInfo, reason: str
    ) -> None:
        details = {"version": info.version, "sha256": info.sha256}
        self._uow.refuse(context, action, target, f"load refused: {reason}", details=details)
        raise LoadRefused(f"Model {info.ref} cannot be loaded: {reason}.")

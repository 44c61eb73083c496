"""The secrets store: named, versioned secrets, encrypted at rest, every access authorized and audited.

Each version's value is sealed with AES-256-GCM under its own data key, wrapped by the ``bastion/secrets``
key-encryption key (created on first use) and bound to the secret's name and version, so a ciphertext copied
to another row does not open. Reading a value is ``secrets.read`` on the secret *and* ``keys.decrypt`` on the
key: two audit records, neither holding the value. Values never appear in a repr, a log line or an error.
Deleting crypto-shreds every version (wrapped keys and ciphertexts are erased).
"""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import func, select

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.keys.errors import CryptoError, KeyNotFound
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine.context import SYSTEM, Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import Secret, SecretVersion

SECRETS_KEY = "bastion/secrets"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
MAX_VALUE_BYTES = 64 * 1024


# Upstream credentials (an LLM provider's API key) live under this prefix: their resource names the system as
# owner, and a shipped policy lets the system read exactly those — so the gateway can inject them into
# upstream requests without anyone handing it a broader grant.
SYSTEM_READABLE_PREFIX = "bastion/upstream/"


def secret_resource(name: str) -> Resource:
    if name.startswith(SYSTEM_READABLE_PREFIX):
        return Resource("secret", name, {"owner": SYSTEM.id})
    return Resource("secret", name)


@dataclass(frozen=True, slots=True)
class SecretInfo:
    name: str
    current_version: int
    versions: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SecretValue:
    name: str
    version: int
    value: SecretStr = field(repr=False)


class SecretsStore:
    def __init__(self, uow: UnitOfWork, keys: KeyManager, clock: Clock) -> None:
        self._uow = uow
        self._keys = keys
        self._clock = clock

    def put(self, context: Context, name: str, value: SecretStr) -> SecretInfo:
        """Store a new version (the first creates the secret)."""
        if not _NAME.fullmatch(name):
            raise InvalidInput("Secret names are 1-255 letters, digits, '.', '_', '/' or '-'.")
        raw = value.get_secret_value().encode()
        if not raw or len(raw) > MAX_VALUE_BYTES:
            raise InvalidInput(f"A secret value must be 1 to {MAX_VALUE_BYTES} bytes.")
        self._ensure_key(context)
        # The data key comes first, in its own audited action: SQLite admits one writer at a time, so key
        # use must not nest inside this action's transaction.
        with self._uow.read(context, "secrets.list", secret_resource(name)) as work:
            row = work.session.get(Secret, name)
            version = 1 if row is None else row.current_version + 1
        data_key = self._keys.generate_data_key(context, SECRETS_KEY, _binding(name, version))
        nonce = random.token_bytes(12)
        sealed = nonce + AESGCM(data_key.plaintext).encrypt(nonce, raw, _binding(name, version))
        with self._uow.act(
            context, "secrets.write", secret_resource(name), details={"version": version}
        ) as work:
            row = work.session.get(Secret, name)
            if (1 if row is None else row.current_version + 1) != version:
                raise Conflict(f"Secret {name} changed while it was being written; try again.")
            now = self._clock.now()
            if row is None:
                row = Secret(name=name, current_version=version, created_at=now, updated_at=now)
                work.session.add(row)
            else:
                row.current_version, row.updated_at = version, now
            work.session.add(
                SecretVersion(
                    name=name,
                    version=version,
                    key_version=data_key.version,
                    wrapped_key=data_key.wrapped,
                    ciphertext=sealed,
                    created_at=now,
                    created_by=context.principal.id,
                )
            )
            return SecretInfo(name, version, version, row.created_at, now)

    def get(self, context: Context, name: str, version: int | None = None) -> SecretValue:
        with self._uow.read(
            context, "secrets.read", secret_resource(name), details={"version": version or "current"}
        ) as work:
            row = work.session.get(Secret, name)
            if row is None:
                raise NotFound(f"There is no secret named {name}.")
            wanted = version or row.current_version
            stored = work.session.get(SecretVersion, (name, wanted))
            if stored is None or stored.ciphertext is None or stored.wrapped_key is None:
                raise NotFound(f"Secret {name} has no readable version {wanted}.")
            key_version, wrapped, sealed = stored.key_version, stored.wrapped_key, stored.ciphertext
        binding = _binding(name, wanted)
        plaintext_key = self._keys.unwrap(context, SECRETS_KEY, key_version, wrapped, binding)
        try:
            value = AESGCM(plaintext_key).decrypt(sealed[:12], sealed[12:], binding)
        except InvalidTag as error:
            raise CryptoError from error
        return SecretValue(name, wanted, SecretStr(value.decode()))

    def list_secrets(self, context: Context) -> list[SecretInfo]:
        with self._uow.read(context, "secrets.list", Resource("secret", "*")) as work:
            counts = dict(
                work.session.execute(
                    select(SecretVersion.name, func.count()).group_by(SecretVersion.name)
                ).all()
            )
            return [
                SecretInfo(
                    row.name,
                    row.current_version,
                    int(counts.get(row.name, 0)),
                    row.created_at,
                    row.updated_at,
                )
                for row in work.session.scalars(select(Secret).order_by(Secret.name))
            ]

    def delete(self, context: Context, name: str) -> None:
        """Crypto-shred every version (wrapped keys and ciphertexts erased); the name stays as a tombstone."""
        with self._uow.act(context, "secrets.delete", secret_resource(name)) as work:
            if work.session.get(Secret, name) is None:
                raise NotFound(f"There is no secret named {name}.")
            versions = work.session.scalars(select(SecretVersion).where(SecretVersion.name == name)).all()
            for stored in versions:
                stored.wrapped_key, stored.ciphertext = None, None
            work.details["versions"] = len(versions)

    def _ensure_key(self, context: Context) -> None:
        try:
            self._keys.describe(context, SECRETS_KEY)
        except KeyNotFound:
            self._keys.create(context, SECRETS_KEY, KeyPurpose.ENCRYPT)


def _binding(name: str, version: int) -> bytes:
    return f"bastion-secret-v1|{name}|{version}".encode()

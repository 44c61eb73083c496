"""``KeyManager``: the one door to key material. Every call is an authorized, audited action on the key
(``keys.create``, ``keys.read``, ``keys.rotate``, ``keys.disable``, ``keys.enable``, ``keys.destroy``,
``keys.encrypt``, ``keys.decrypt``, ``keys.sign``, ``keys.verify``, ``keys.mac``); audit details name the key,
version and purpose — and a hash of signed data, never the data or any key material.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.clock import Clock
from bastion.core.errors import Conflict, InvalidInput
from bastion.keys.backend import KeyBackend
from bastion.keys.errors import CryptoError, KeyNotFound, KeyStateError
from bastion.keys.model import (
    ALGORITHMS_BY_PURPOSE,
    KeyAlgorithm,
    KeyInfo,
    KeyPurpose,
    KeyState,
    KeyVersionInfo,
)
from bastion.spine.context import SYSTEM, Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import Key, KeyVersion

_NAME = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,127}$")
ALL_KEYS = Resource("key", "*")
# Keys under this prefix belong to Bastion itself (e.g. one key per stored model version, destroyed to
# crypto-shred it): their resource names the system as owner, and a shipped policy lets the system use
# exactly the keys it owns.
SYSTEM_OWNED_PREFIX = "bastion/owned/"


def key_resource(name: str) -> Resource:
    if name.startswith(SYSTEM_OWNED_PREFIX):
        return Resource("key", name, {"owner": SYSTEM.id})
    return Resource("key", name)


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key: use ``plaintext`` once, keep ``wrapped`` (safe to store) with the data."""

    version: int
    wrapped: bytes
    plaintext: bytes = field(repr=False)


class KeyManager:
    def __init__(self, uow: UnitOfWork, backend: KeyBackend, clock: Clock) -> None:
        self._uow = uow
        self._backend = backend
        self._clock = clock

    @property
    def backend_name(self) -> str:
        return self._backend.name

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(
        self,
        context: Context,
        name: str,
        purpose: KeyPurpose,
        algorithm: KeyAlgorithm | None = None,
        max_age_days: int | None = None,
    ) -> KeyInfo:
        if not _NAME.fullmatch(name):
            raise InvalidInput("Key names are 1-128 lowercase letters, digits, '.', '_', '/' or '-'.")
        algorithm = algorithm or ALGORITHMS_BY_PURPOSE[purpose][0]
        if algorithm not in ALGORITHMS_BY_PURPOSE[purpose]:
            raise InvalidInput(f"A {purpose.value} key cannot use {algorithm.value}.")
        if max_age_days is not None and max_age_days < 1:
            raise InvalidInput("max_age_days must be at least 1.")
        details = {"purpose": purpose.value, "algorithm": algorithm.value, "backend": self._backend.name}
        with self._uow.act(context, "keys.create", key_resource(name), details=details) as work:
            if work.session.get(Key, name) is not None:
                raise Conflict(f"A key named {name} already exists.")
            now = self._clock.now()
            ref = self._backend.generate(algorithm, f"{name}#1")
            work.session.add(
                Key(
                    name=name,
                    purpose=purpose.value,
                    algorithm=algorithm.value,
                    backend=self._backend.name,
                    state=KeyState.ENABLED.value,
                    primary_version=1,
                    created_at=now,
                    rotated_at=now,
                    max_age_days=max_age_days,
                )
            )
            work.session.add(
                KeyVersion(
                    key_name=name, version=1, state=KeyState.ENABLED.value, backend_ref=ref, created_at=now
                )
            )
            work.session.flush()
            return _info(work.session, name)

    def list_keys(self, context: Context) -> list[KeyInfo]:
        with self._uow.read(context, "keys.read", ALL_KEYS) as work:
            names = work.session.scalars(select(Key.name).order_by(Key.name)).all()
            return [_info(work.session, name) for name in names]

    def describe(self, context: Context, name: str) -> KeyInfo:
        with self._uow.read(context, "keys.read", key_resource(name)) as work:
            return _info(work.session, name)

    def rotate(self, context: Context, name: str) -> KeyInfo:
        """A new primary version; older versions keep decrypting and verifying only."""
        with self._uow.act(context, "keys.rotate", key_resource(name)) as work:
            key = _usable_key(work.session, name)
            version = max(v.version for v in _versions(work.session, name)) + 1
            ref = self._backend.generate(KeyAlgorithm(key.algorithm), f"{name}#{version}")
            now = self._clock.now()
            work.session.add(
                KeyVersion(
                    key_name=name,
                    version=version,
                    state=KeyState.ENABLED.value,
                    backend_ref=ref,
                    created_at=now,
                )
            )
            key.primary_version, key.rotated_at = version, now
            work.details["new_version"] = version
            work.session.flush()
            return _info(work.session, name)

    def disable(self, context: Context, name: str) -> KeyInfo:
        return self._set_state(context, name, KeyState.DISABLED, "keys.disable")

    def enable(self, context: Context, name: str) -> KeyInfo:
        return self._set_state(context, name, KeyState.ENABLED, "keys.enable")

    def _set_state(self, context: Context, name: str, state: KeyState, action: str) -> KeyInfo:
        with self._uow.act(context, action, key_resource(name)) as work:
            key = _key(work.session, name)
            if key.state == KeyState.DESTROYED.value:
                raise KeyStateError(f"Key {name} was destroyed.")
            key.state = state.value
            work.session.flush()
            return _info(work.session, name)

    def destroy(self, context: Context, name: str, version: int | None = None) -> KeyInfo:
        """Erase the material of one version, or of every version: what it protected becomes unrecoverable."""
        details = {"version": version if version is not None else "all"}
        with self._uow.act(context, "keys.destroy", key_resource(name), details=details) as work:
            key = _key(work.session, name)
            targets = [v for v in _versions(work.session, name) if version is None or v.version == version]
            if not targets:
                raise KeyNotFound(f"Key {name} has no version {version}.")
            if version is not None and version == key.primary_version:
                raise KeyStateError(
                    "The primary version cannot be destroyed alone; rotate first, or destroy the key."
                )
            for target in targets:
                if target.backend_ref is not None:
                    self._backend.destroy(target.backend_ref)
                target.state, target.backend_ref, target.field_keys_wrapped = (
                    KeyState.DESTROYED.value,
                    None,
                    None,
                )
            if version is None:
                key.state = KeyState.DESTROYED.value
            work.session.flush()
            return _info(work.session, name)

    def due_for_rotation(self, context: Context) -> list[KeyInfo]:
        now = self._clock.now()
        return [
            info
            for info in self.list_keys(context)
            if info.state is KeyState.ENABLED and info.rotation_due(now)
        ]

    # -- use ---------------------------------------------------------------------------------------
    def generate_data_key(self, context: Context, name: str, aad: bytes, size: int = 32) -> DataKey:
        """A fresh random data key and its wrapping under the primary version (envelope encryption)."""
        details = {"aad_sha256": hashlib.sha256(aad).hexdigest()}
        with self._uow.act(context, "keys.encrypt", key_resource(name), details=details) as work:
            key = _usable_key(work.session, name, KeyPurpose.ENCRYPT)
            ref = _version_ref(work.session, name, key.primary_version)
            plaintext = secrets.token_bytes(size)
            work.details["version"] = key.primary_version
            return DataKey(
                version=key.primary_version,
                wrapped=self._backend.wrap(ref, plaintext, aad),
                plaintext=plaintext,
            )

    def unwrap(self, context: Context, name: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        details = {"version": version, "aad_sha256": hashlib.sha256(aad).hexdigest()}
        with self._uow.act(context, "keys.decrypt", key_resource(name), details=details) as work:
            _usable_key(work.session, name, KeyPurpose.ENCRYPT)
            return self._backend.unwrap(_version_ref(work.session, name, version), wrapped, aad)

    def rewrap(
        self, context: Context, name: str, version: int, wrapped: bytes, aad: bytes
    ) -> tuple[int, bytes]:
        """Re-wrap a data key under the primary version without ever returning it."""
        details = {"from_version": version, "aad_sha256": hashlib.sha256(aad).hexdigest()}
        with self._uow.act(context, "keys.rewrap", key_resource(name), details=details) as work:
            key = _usable_key(work.session, name, KeyPurpose.ENCRYPT)
            plaintext = self._backend.unwrap(_version_ref(work.session, name, version), wrapped, aad)
            primary = key.primary_version
            work.details["to_version"] = primary
            return primary, self._backend.wrap(_version_ref(work.session, name, primary), plaintext, aad)

    def field_keys(self, context: Context, name: str, version: int | None = None) -> tuple[int, bytes]:
        """The field-encryption keys of a version (the primary if None): created on first use, stored wrapped
        by that version. For ``bastion.keys.fields`` only."""
        details = {"version": version if version is not None else "primary", "use": "field-encryption"}
        with self._uow.act(context, "keys.decrypt", key_resource(name), details=details) as work:
            key = _usable_key(work.session, name, KeyPurpose.ENCRYPT)
            resolved = version if version is not None else key.primary_version
            row = work.session.get(KeyVersion, (name, resolved))
            ref = _version_ref(work.session, name, resolved)
            aad = b"bastion-field-keys-v1|" + name.encode() + struct.pack(">I", resolved)
            if row is not None and row.field_keys_wrapped is None:
                if version is not None:
                    raise CryptoError  # tokens claim a version that never encrypted a field
                material = secrets.token_bytes(96)  # 32 for AES-GCM, 64 for AES-SIV
                row.field_keys_wrapped = self._backend.wrap(ref, material, aad)
                return resolved, material
            if row is None or row.field_keys_wrapped is None:
                raise CryptoError
            return resolved, self._backend.unwrap(ref, row.field_keys_wrapped, aad)

    def report_failure(self, context: Context, name: str, reason: str, details: dict[str, object]) -> None:
        """Record why a decryption failed (the caller only ever sees the opaque ``CryptoError``)."""
        self._uow.report_failure(context, "keys.decrypt", key_resource(name), reason, dict(details))

    def sign(self, context: Context, name: str, data: bytes) -> tuple[int, bytes]:
        details = {"data_sha256": hashlib.sha256(data).hexdigest()}
        with self._uow.act(context, "keys.sign", key_resource(name), details=details) as work:
            key = _usable_key(work.session, name, KeyPurpose.SIGN)
            ref = _version_ref(work.session, name, key.primary_version)
            work.details["version"] = key.primary_version
            return key.primary_version, self._backend.sign(ref, KeyAlgorithm(key.algorithm), data)

    def verify(self, context: Context, name: str, version: int, data: bytes, signature: bytes) -> bool:
        details = {"version": version, "data_sha256": hashlib.sha256(data).hexdigest()}
        with self._uow.read(context, "keys.verify", key_resource(name), details=details) as work:
            key = _usable_key(work.session, name, KeyPurpose.SIGN)
            public = self._backend.public_key(_version_ref(work.session, name, version))
            valid = _verify(public, KeyAlgorithm(key.algorithm), data, signature)
            work.details["valid"] = valid
            return valid

    def public_key_pem(self, context: Context, name: str, version: int | None = None) -> bytes:
        with self._uow.read(context, "keys.read", key_resource(name)) as work:
            key = _usable_key(work.session, name, KeyPurpose.SIGN)
            public = self._backend.public_key(
                _version_ref(work.session, name, version or key.primary_version)
            )
            return public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )

    def mac(self, context: Context, name: str, data: bytes) -> tuple[int, bytes]:
        with self._uow.act(context, "keys.mac", key_resource(name)) as work:
            key = _usable_key(work.session, name, KeyPurpose.MAC)
            return key.primary_version, self._backend.mac(
                _version_ref(work.session, name, key.primary_version), data
            )


def _verify(public: object, algorithm: KeyAlgorithm, data: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            digest = hashes.SHA384() if algorithm is KeyAlgorithm.ECDSA_P384 else hashes.SHA256()
            public.verify(signature, data, ec.ECDSA(digest))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key(session: Session, name: str) -> Key:
    key = session.get(Key, name)
    if key is None:
        raise KeyNotFound(f"There is no key named {name}.")
    return key


def _usable_key(session: Session, name: str, purpose: KeyPurpose | None = None) -> Key:
    key = _key(session, name)
    if key.state != KeyState.ENABLED.value:
        raise KeyStateError(f"Key {name} is {key.state}.")
    if purpose is not None and key.purpose != purpose.value:
        raise KeyStateError(f"Key {name} is a {key.purpose} key, not a {purpose.value} key.")
    return key


def _versions(session: Session, name: str) -> list[KeyVersion]:
    return list(
        session.scalars(select(KeyVersion).where(KeyVersion.key_name == name).order_by(KeyVersion.version))
    )


def _version_ref(session: Session, name: str, version: int) -> str:
    row = session.get(KeyVersion, (name, version))
    if row is None or row.backend_ref is None or row.state != KeyState.ENABLED.value:
        raise CryptoError  # unknown, disabled or destroyed version: opaque, like any other failure
    return row.backend_ref


def _info(session: Session, name: str) -> KeyInfo:
    key = _key(session, name)
    return KeyInfo(
        name=key.name,
        purpose=KeyPurpose(key.purpose),
        algorithm=KeyAlgorithm(key.algorithm),
        backend=key.backend,
        state=KeyState(key.state),
        primary_version=key.primary_version,
        created_at=key.created_at,
        rotated_at=key.rotated_at,
        max_age_days=key.max_age_days,
        versions=tuple(
            KeyVersionInfo(v.version, KeyState(v.state), v.created_at) for v in _versions(session, name)
        ),
    )

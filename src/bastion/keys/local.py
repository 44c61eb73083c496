"""The embedded key backend: key material in a keyring file sealed under a master key.

File layout: ``BSTKR1\\n`` | header JSON line (KDF and its parameters) | 12-byte nonce | AES-256-GCM of the
entries, with the magic and header as associated data — so a single flipped bit anywhere, or a different
master key, fails to open it. Writes are atomic (temp file + fsync + rename) under an exclusive ``flock``,
and readers reload when the file changes, so the CLI and a running server can share it.

The master key comes from, in order: ``BASTION_MASTER_KEY`` (base64 of 32 bytes), a passphrase
(``BASTION_MASTER_PASSPHRASE``, stretched with scrypt), or a 0600 key file (default ``<state>/master.key``,
created on first use). A master key file next to the keyring only protects against theft of the database;
production deployments should supply the key from outside the host or use the PKCS#11 backend.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from bastion.core.errors import ConfigError
from bastion.keys.errors import CryptoError, KeyNotFound
from bastion.keys.model import KeyAlgorithm

MAGIC = b"BSTKR1\n"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


@dataclass(frozen=True)
class MasterKeySource:
    key: SecretStr | None = None
    passphrase: SecretStr | None = None
    key_file: Path | None = None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class LocalBackend:
    name = "local"

    def __init__(self, keyring: Path, master: MasterKeySource) -> None:
        self._path = keyring
        self._lock_path = keyring.with_name(keyring.name + ".lock")
        self._master = master
        self._entries: dict[str, dict[str, str]] = {}
        self._stamp: tuple[int, int] | None = None
        self._kdf: dict[str, Any] | None = None
        self._mutex = threading.Lock()

    # -- sealing -----------------------------------------------------------------------------------
    def _master_key(self, kdf: dict[str, Any]) -> bytes:
        if kdf["type"] == "scrypt":
            if self._master.passphrase is None:
                raise ConfigError("The keyring is sealed with a passphrase; set BASTION_MASTER_PASSPHRASE.")
            salt = base64.b64decode(kdf["salt"])
            return hashlib.scrypt(
                self._master.passphrase.get_secret_value().encode(),
                salt=salt,
                n=kdf["n"],
                r=kdf["r"],
                p=kdf["p"],
                maxmem=2**26,
                dklen=32,
            )
        if self._master.key is not None:
            return _decode_master(self._master.key.get_secret_value(), "BASTION_MASTER_KEY")
        if self._master.key_file is None:
            raise ConfigError(
                "No master key configured.", remedy="Set BASTION_MASTER_KEY or a master key file."
            )
        return self._key_from_file(self._master.key_file)

    @staticmethod
    def _key_from_file(path: Path) -> bytes:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_atomic(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"The master key file {path} is readable by others.", remedy=f"chmod 600 {path}"
            )
        return _decode_master(path.read_text().strip(), str(path))

    def _new_kdf(self) -> dict[str, Any]:
        if self._master.key is None and self._master.passphrase is not None:
            return {"type": "scrypt", "salt": base64.b64encode(secrets.token_bytes(16)).decode(), **_SCRYPT}
        return {"type": "raw"}

    def _open(self, data: bytes) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
        try:
            if not data.startswith(MAGIC):
                raise ValueError("magic")
            header_line, _, rest = data[len(MAGIC) :].partition(b"\n")
            kdf = json.loads(header_line)
            nonce, sealed = rest[:12], rest[12:]
            if not isinstance(kdf, dict) or kdf.get("type") not in ("raw", "scrypt"):
                raise ValueError("kdf")
            master = self._master_key(kdf)
        except (ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
            raise ConfigError(f"The keyring {self._path} is damaged.") from error
        try:
            plain = AESGCM(master).decrypt(nonce, sealed, MAGIC + header_line)
        except InvalidTag as error:
            raise ConfigError(
                f"The keyring {self._path} was tampered with, or the master key does not open it."
            ) from error
        entries: dict[str, dict[str, str]] = json.loads(plain)
        return kdf, entries

    def _seal(self, kdf: dict[str, Any], entries: dict[str, dict[str, str]]) -> bytes:
        header = json.dumps(kdf, sort_keys=True).encode()
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._master_key(kdf)).encrypt(nonce, json.dumps(entries).encode(), MAGIC + header)
        return MAGIC + header + b"\n" + nonce + sealed

    def _refresh(self) -> None:
        if not self._path.exists():
            self._entries, self._stamp, self._kdf = {}, None, None
            return
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._kdf, self._entries = self._open(self._path.read_bytes())
            self._stamp = stamp

    @contextmanager
    def _editing(self) -> Iterator[dict[str, dict[str, str]]]:
        """Read-modify-write of the keyring under an exclusive lock, across processes."""
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._mutex:
                self._stamp = None
                self._refresh()
                kdf = self._kdf or self._new_kdf()
                entries = dict(self._entries)
                yield entries
                _write_atomic(self._path, self._seal(kdf, entries))
                self._kdf, self._entries, self._stamp = kdf, entries, None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _entry(self, ref: str) -> dict[str, str]:
        with self._mutex:
            self._refresh()
            entry = self._entries.get(ref)
        if entry is None:
            raise KeyNotFound("The key material is not in the keyring (destroyed, or the wrong keyring).")
        return entry

    def check(self) -> None:
        """Open the keyring (if it exists) to prove the master key is right."""
        with self._mutex:
            self._stamp = None
            self._refresh()

    # -- KeyBackend --------------------------------------------------------------------------------
    def generate(self, algorithm: KeyAlgorithm, label: str) -> str:
        material = _generate(algorithm)
        ref = f"lk_{secrets.token_hex(12)}"
        with self._editing() as entries:
            entries[ref] = {
                "alg": algorithm.value,
                "label": label,
                "material": base64.b64encode(material).decode(),
            }
        return ref

    def _material(self, ref: str) -> tuple[KeyAlgorithm, bytes]:
        entry = self._entry(ref)
        return KeyAlgorithm(entry["alg"]), base64.b64decode(entry["material"])

    def wrap(self, ref: str, plaintext: bytes, aad: bytes) -> bytes:
        _, key = self._material(ref)
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def unwrap(self, ref: str, wrapped: bytes, aad: bytes) -> bytes:
        _, key = self._material(ref)
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], aad)
        except (InvalidTag, ValueError) as error:
            raise CryptoError from error

    def sign(self, ref: str, algorithm: KeyAlgorithm, data: bytes) -> bytes:
        _, material = self._material(ref)
        key = serialization.load_der_private_key(material, password=None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            digest = hashes.SHA384() if algorithm is KeyAlgorithm.ECDSA_P384 else hashes.SHA256()
            return key.sign(data, ec.ECDSA(digest))
        raise KeyNotFound("The key is not a signing key.")

    def public_key(self, ref: str) -> PublicKeyTypes:
        _, material = self._material(ref)
        key = serialization.load_der_private_key(material, password=None)
        return key.public_key()

    def mac(self, ref: str, data: bytes) -> bytes:
        _, key = self._material(ref)
        return hmac.new(key, data, hashlib.sha256).digest()

    def destroy(self, ref: str) -> None:
        with self._editing() as entries:
            entries.pop(ref, None)


def _decode_master(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConfigError(f"The master key in {where} is not base64.") from error
    if len(key) != 32:
        raise ConfigError(f"The master key in {where} must be 32 bytes (base64 of 32 random bytes).")
    return key


def _generate(algorithm: KeyAlgorithm) -> bytes:
    der = serialization.Encoding.DER
    pkcs8, none = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    if algorithm in (KeyAlgorithm.AES256_GCM, KeyAlgorithm.HMAC_SHA256):
        return secrets.token_bytes(32)
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate().private_bytes(der, pkcs8, none)
    curve = ec.SECP384R1() if algorithm is KeyAlgorithm.ECDSA_P384 else ec.SECP256R1()
    return ec.generate_private_key(curve).private_bytes(der, pkcs8, none)

"""The local keyring: sealed under the master key, tamper-evident, and the master key's sources."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from bastion.core.errors import ConfigError
from bastion.keys.local import LocalBackend, MasterKeySource
from bastion.keys.model import KeyAlgorithm


def test_keyring_is_sealed_and_material_never_plain(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "keyring.bks", MasterKeySource(key_file=tmp_path / "master.key"))
    ref = backend.generate(KeyAlgorithm.AES256_GCM, "k")
    wrapped = backend.wrap(ref, b"d" * 32, b"aad")
    stored = (tmp_path / "keyring.bks").read_bytes()
    assert ref.encode() not in stored  # even the entry names are inside the sealed part
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keyring.bks").stat().st_mode & 0o777 == 0o600
    reopened = LocalBackend(tmp_path / "keyring.bks", MasterKeySource(key_file=tmp_path / "master.key"))
    assert reopened.unwrap(ref, wrapped, b"aad") == b"d" * 32


@pytest.mark.parametrize("offset", [0, 10, -40, -1])
def test_tampered_keyring_is_refused(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "keyring.bks"
    backend = LocalBackend(path, MasterKeySource(key_file=tmp_path / "master.key"))
    backend.generate(KeyAlgorithm.AES256_GCM, "k")
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"damaged|tampered"):
        LocalBackend(path, MasterKeySource(key_file=tmp_path / "master.key")).check()


def test_wrong_master_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.bks"
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    LocalBackend(path, MasterKeySource(key=SecretStr(key))).generate(KeyAlgorithm.HMAC_SHA256, "k")
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(ConfigError, match="master key does not open"):
        LocalBackend(path, MasterKeySource(key=SecretStr(other))).check()


def test_passphrase_sealing(tmp_path: Path) -> None:
    path = tmp_path / "keyring.bks"
    sealed = LocalBackend(path, MasterKeySource(passphrase=SecretStr("correct horse battery staple")))
    ref = sealed.generate(KeyAlgorithm.ED25519, "k")
    assert b'"scrypt"' in path.read_bytes()
    again = LocalBackend(path, MasterKeySource(passphrase=SecretStr("correct horse battery staple")))
    assert again.public_key(ref) is not None
    with pytest.raises(ConfigError):
        LocalBackend(path, MasterKeySource(passphrase=SecretStr("wrong"))).check()
    with pytest.raises(ConfigError, match="PASSPHRASE"):
        LocalBackend(path, MasterKeySource(key_file=tmp_path / "m.key")).check()


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_bad_master_keys_are_clear_errors(tmp_path: Path, value: str) -> None:
    backend = LocalBackend(tmp_path / "k.bks", MasterKeySource(key=SecretStr(value)))
    with pytest.raises(ConfigError, match="BASTION_MASTER_KEY") as raised:
        backend.generate(KeyAlgorithm.AES256_GCM, "k")
    assert value not in str(raised.value)


def test_readable_master_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        LocalBackend(tmp_path / "k.bks", MasterKeySource(key_file=key_file)).generate(
            KeyAlgorithm.AES256_GCM, "k"
        )

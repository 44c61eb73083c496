"""What a key is, independent of where its material lives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class KeyPurpose(StrEnum):
    ENCRYPT = "encrypt"  # key-encryption key: wraps data keys (envelope and field encryption)
    SIGN = "sign"
    MAC = "mac"


class KeyAlgorithm(StrEnum):
    AES256_GCM = "aes256-gcm"
    ECDSA_P256 = "ecdsa-p256-sha256"
    ECDSA_P384 = "ecdsa-p384-sha384"
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"


ALGORITHMS_BY_PURPOSE: dict[KeyPurpose, tuple[KeyAlgorithm, ...]] = {
    KeyPurpose.ENCRYPT: (KeyAlgorithm.AES256_GCM,),
    KeyPurpose.SIGN: (KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.ED25519),
    KeyPurpose.MAC: (KeyAlgorithm.HMAC_SHA256,),
}


class KeyState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # no use at all until enabled again
    DESTROYED = "destroyed"  # material gone: what it protected is unrecoverable


@dataclass(frozen=True, slots=True)
class KeyVersionInfo:
    version: int
    state: KeyState
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    purpose: KeyPurpose
    algorithm: KeyAlgorithm
    backend: str
    state: KeyState
    primary_version: int
    created_at: datetime
    rotated_at: datetime
    max_age_days: int | None
    versions: tuple[KeyVersionInfo, ...]

    def rotation_due(self, now: datetime) -> bool:
        return self.max_age_days is not None and (now - self.rotated_at).days >= self.max_age_days

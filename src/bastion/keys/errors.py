"""Errors of the key subsystem. Cryptographic failures are one opaque error; detail goes to the audit log."""

from __future__ import annotations

from bastion.core.errors import BastionError, Conflict, ExitCode, NotFound, Unavailable


class KeyNotFound(NotFound):
    code = "keys.not_found"


class KeyStateError(Conflict):
    code = "keys.state"
    title = "Key not usable"


class CryptoError(BastionError):
    """Every way a ciphertext or wrapped key can be wrong, as one error (cf. Fernet's InvalidToken).

    The caller learns nothing about which check failed; the audit record of the attempt says which."""

    code = "crypto.failed"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Cryptographic verification failed"

    def __init__(self) -> None:
        super().__init__("The data could not be decrypted or verified.")


class KeyBackendUnavailable(Unavailable):
    code = "keys.backend_unavailable"
    title = "Key backend unavailable"

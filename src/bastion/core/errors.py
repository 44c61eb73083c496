"""The error hierarchy every layer raises and every interface renders.

Each error carries a stable machine ``code`` (part of the public API: clients and scripts match on it), the
HTTP status the API answers with, the CLI exit code, and a user-facing message with a remedy. Library
exceptions are translated into these at the boundary with ``raise ... from`` so callers see one vocabulary.

Messages are written for the person on the other end: they never contain secrets, stack traces or internal
identifiers beyond what the caller already knows. Authentication and cryptographic failures are deliberately
opaque; the detail goes to the audit log instead.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    """Process exit codes of the ``bastion`` CLI (documented in the README)."""

    OK = 0
    INTERNAL = 1  # a bug or an unexpected failure: please report it
    USAGE = 2  # bad command-line usage (unknown flag, missing argument)
    CONFIG = 3  # configuration is invalid
    INVALID_INPUT = 4  # the request or input is invalid
    NOT_FOUND = 5
    CONFLICT = 6
    DENIED = 7  # authentication failed or policy denied the action
    UNAVAILABLE = 8  # a dependency (database, key backend, audit log) is unavailable
    FINDING = 10  # the command worked and found a problem (e.g. verification failed)
    UNSCANNABLE = 11  # `bastion scan`: nothing unsafe found, but something could not be scanned


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    code: ClassVar[str] = "bastion.error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL
    title: ClassVar[str] = "Internal error"
    default_remedy: ClassVar[str] = ""

    def __init__(self, message: str, *, remedy: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy if remedy is not None else self.default_remedy
        # Extra members are rendered into problem documents; they must be safe to show the caller.
        self.extra = extra

    def diagnostics(self) -> str:
        """The message plus remedy, as the CLI prints it."""
        if self.remedy:
            return f"{self.message}\nHint: {self.remedy}"
        return self.message


class ConfigError(BastionError):
    code = "config.invalid"
    status = 500
    exit_code = ExitCode.CONFIG
    title = "Invalid configuration"
    default_remedy = "Fix the named setting in bastion.toml or its BASTION_* environment variable."


class InvalidInput(BastionError):
    code = "request.invalid"
    status = 400
    exit_code = ExitCode.INVALID_INPUT
    title = "Invalid request"


class VerificationFailed(BastionError):
    """Something was checked and did not hold (a signature, a digest): a finding, not a bad request."""

    code = "verification.failed"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Verification failed"


class NotFound(BastionError):
    code = "resource.not_found"
    status = 404
    exit_code = ExitCode.NOT_FOUND
    title = "Not found"


class PayloadTooLarge(BastionError):
    code = "request.too_large"
    status = 413
    exit_code = ExitCode.INVALID_INPUT
    title = "Payload too large"


class RateLimited(BastionError):
    code = "rate.limited"
    status = 429
    exit_code = ExitCode.UNAVAILABLE
    title = "Too many requests"


class Conflict(BastionError):
    code = "resource.conflict"
    status = 409
    exit_code = ExitCode.CONFLICT
    title = "Conflict"


class AuthenticationRequired(BastionError):
    code = "auth.required"
    status = 401
    exit_code = ExitCode.DENIED
    title = "Authentication required"
    default_remedy = "Send credentials in the Authorization header."


class InvalidCredentials(BastionError):
    """One opaque error for every way a credential can be wrong."""

    code = "auth.invalid_credentials"
    status = 401
    exit_code = ExitCode.DENIED
    title = "Invalid credentials"

    def __init__(self) -> None:
        super().__init__("The credentials could not be verified.")


class PermissionDenied(BastionError):
    code = "policy.denied"
    status = 403
    exit_code = ExitCode.DENIED
    title = "Permission denied"
    default_remedy = "Ask an administrator for a policy that grants this action."


class Unavailable(BastionError):
    code = "service.unavailable"
    status = 503
    exit_code = ExitCode.UNAVAILABLE
    title = "Service unavailable"
    default_remedy = "Retry later; if it persists, check the server logs."


class StoreUnavailable(Unavailable):
    code = "store.unavailable"
    title = "Database unavailable"
    default_remedy = "Check that the database is reachable and BASTION_DATABASE_URL is right."


class AuditUnavailable(Unavailable):
    """The audit log refused or failed an append; the action it was recording did not happen."""

    code = "audit.unavailable"
    title = "Audit log unavailable"
    default_remedy = "No action is performed without its audit record. Check the server logs."


class InternalError(BastionError):
    """What an unexpected exception becomes at an interface boundary: no detail leaks."""

    code = "internal.error"

    def __init__(self) -> None:
        super().__init__(
            "An unexpected error occurred.",
            remedy="Report it with the request id; the server log has the details.",
        )

"""The contracts the spine depends on. Implementations live in bastion.policy, bastion.audit and
bastion.identity, and are chosen in the composition root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import SecretStr
from sqlalchemy.orm import Session

from bastion.spine.context import Context, Principal, Resource


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    policy_ids: tuple[str, ...] = ()


class Authorizer(Protocol):
    """Decides whether ``context.principal`` may perform ``action`` on ``resource``. Denies by default."""

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision: ...

    def ready(self, context: Context) -> bool:
        """Whether ``authorize`` would decide for this principal from memory, with nothing to read first: a
        caller on an event loop asks, and decides on a thread otherwise."""
        ...


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the unit of work hands the audit log. Never holds a secret or a raw payload."""

    occurred_at: datetime
    context: Context
    action: str
    resource: Resource
    outcome: Outcome
    reason: str = ""
    policy_ids: Sequence[str] = ()
    data_categories: Sequence[str] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


class AuditLog(Protocol):
    def append(self, session: Session, record: AuditRecord) -> int:
        """Append ``record`` inside the caller's transaction and return its sequence number.

        Raises ``AuditUnavailable`` if the record cannot be written; the caller's transaction then rolls back.
        """
        ...


class AuditWriter(Protocol):
    def append(self, record: AuditRecord) -> int:
        """Append ``record`` in a transaction of its own (possibly shared with other such records) and
        return its sequence number once it is durable. Raises ``AuditUnavailable`` on failure."""
        ...

    def submit(self, record: AuditRecord) -> Future[int]:
        """Queue ``record`` for a durable append; the future resolves to its sequence number once it is
        durable (or fails with ``AuditUnavailable``)."""
        ...

    def enqueue(self, record: AuditRecord) -> Future[int] | None:
        """Queue ``record`` for the next group commit without waiting for it (see the writer); when appends
        are failing, a future to wait on instead (the record is then appended durably or refused)."""
        ...

    def flush(self) -> None:
        """Wait until every record queued so far has been committed."""
        ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented. ``scheme`` is e.g. 'bearer'; the value stays masked."""

    scheme: str
    value: SecretStr


class Authenticator(Protocol):
    def authenticate(self, credentials: Credentials | None) -> Principal:
        """Return the verified principal, ``ANONYMOUS`` when nothing was presented, or raise
        ``InvalidCredentials`` (one opaque error) when what was presented does not verify."""
        ...

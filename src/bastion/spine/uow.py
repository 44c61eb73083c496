"""The unit of work: authorize, act, audit — the last two in one transaction.

Service methods never open transactions or write audit records themselves; they run their action inside
``UnitOfWork.act``::

    with uow.act(context, "audit.read", Resource("audit_log", "main")) as work:
        rows = work.session.execute(...)
        work.details["returned"] = len(rows)

The guarantees, each tested:
- the authorizer is asked first, and anything but an explicit allow (a deny, or the authorizer failing)
  refuses the action; the refusal is audited in its own transaction;
- the action and its ``allowed`` audit record commit together or not at all: if the audit append fails the
  action rolls back and the caller gets ``AuditUnavailable``;
- an action that raises rolls back, and an ``error`` record names the failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bastion.core.clock import Clock
from bastion.core.durable import wait_durable
from bastion.core.errors import (
    AuditUnavailable,
    AuthenticationRequired,
    BastionError,
    InternalError,
    PermissionDenied,
)
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import (
    AuditLog,
    AuditRecord,
    AuditWriter,
    Authorizer,
    Decision,
    Outcome,
)
from bastion.store.database import Database

log = logging.getLogger(__name__)


@dataclass
class Work:
    """What the action body gets: the transaction's session and a place to say what it did."""

    session: Session
    details: dict[str, Any] = field(default_factory=dict)
    data_categories: set[str] = field(default_factory=set)


class UnitOfWork:
    def __init__(
        self,
        database: Database,
        authorizer: Authorizer,
        audit: AuditLog,
        clock: Clock,
        writer: AuditWriter | None = None,
    ) -> None:
        self._database = database
        self._authorizer = authorizer
        self._audit = audit
        self._clock = clock
        # Records that stand alone (denials, failures, reads) go through group commit when there is a writer.
        self._writer = writer

    @contextmanager
    def act(
        self,
        context: Context,
        action: str,
        resource: Resource,
        *,
        details: dict[str, Any] | None = None,
        data_categories: Sequence[str] = (),
    ) -> Iterator[Work]:
        decision = self._authorize_or_refuse(context, action, resource, details, data_categories)
        try:
            with self._database.transaction() as session:
                work = Work(session, dict(details or {}), set(data_categories))
                yield work
                record = self._allowed(context, action, resource, decision, work)
                self._append(session, record)
        except AuditUnavailable:
            raise
        except Exception as error:
            self._record_failure(context, action, resource, decision, details, data_categories, error)
            raise

    def authorize(
        self, context: Context, action: str, resource: Resource, *, details: dict[str, Any] | None = None
    ) -> Decision:
        """Ask before costly work (receiving an upload): a refusal is audited and raised; an allow records
        nothing — the action's own ``act`` (or ``record``) records it when it runs."""
        return self._authorize_or_refuse(context, action, resource, details, ())

    def record(
        self,
        context: Context,
        action: str,
        resource: Resource,
        decision: Decision,
        details: dict[str, Any],
        *,
        durable: bool = True,
    ) -> None:
        """Audit an allowed action that changed no state of ours (a prediction served), after ``authorize``:
        appended through group commit, durably, before the caller answers — or, with ``durable=False``,
        queued for the next group commit without waiting (the serving policy's choice for predictions)."""
        pending = self.submit(context, action, resource, decision, details, durable=durable)
        if pending is not None:
            wait_durable(pending)

    def submit(
        self,
        context: Context,
        action: str,
        resource: Resource,
        decision: Decision,
        details: dict[str, Any],
        *,
        durable: bool,
    ) -> Future[int] | None:
        """``record`` without blocking, for callers on an event loop: the record is queued and the future
        (``wait_durable``, or awaited) says when it is durable; ``None`` when there is nothing to wait for (a
        buffered record, or one already appended where there is no group-commit writer)."""
        record = self._record(
            context,
            action,
            resource,
            Outcome.ALLOWED,
            reason=decision.reason,
            policy_ids=decision.policy_ids,
            details=details,
        )
        if self._writer is None:
            self._append_alone(record)
            return None
        return self._writer.submit(record) if durable else self._writer.enqueue(record)

    def decide(self, context: Context, action: str, resource: Resource) -> Decision:
        """The authorizer's decision alone — nothing audited, nothing raised (a caller that must not block
        checks with this, then lets ``authorize`` audit and raise a refusal)."""
        return self._decide(context, action, resource)

    def decides_at_once(self, context: Context) -> bool:
        """Whether ``decide`` would answer for this principal without reading anything (a caller on an event
        loop decides on a thread otherwise)."""
        try:
            return self._authorizer.ready(context)
        except Exception:  # noqa: BLE001 - then ``decide`` finds out, and fails closed, on a thread
            return False

    def settle(self) -> None:
        """Before reading the audit log: wait for queued (buffered) records, so a reader sees every event
        already acknowledged to its caller."""
        if self._writer is not None:
            self._writer.flush()

    def _authorize_or_refuse(
        self,
        context: Context,
        action: str,
        resource: Resource,
        details: dict[str, Any] | None,
        data_categories: Iterable[str],
    ) -> Decision:
        decision = self._decide(context, action, resource)
        if decision.allowed:
            return decision
        self._append_alone(
            self._record(
                context,
                action,
                resource,
                Outcome.DENIED,
                reason=decision.reason,
                policy_ids=decision.policy_ids,
                details=details,
                data_categories=data_categories,
            )
        )
        if context.principal.is_anonymous:
            raise AuthenticationRequired(f"Authentication is required to {action}.")
        raise PermissionDenied(f"Not allowed to {action} on {resource.type} '{resource.id}'.")

    def _record_failure(
        self,
        context: Context,
        action: str,
        resource: Resource,
        decision: Decision,
        details: dict[str, Any] | None,
        data_categories: Iterable[str],
        error: Exception,
    ) -> None:
        if isinstance(error, AuditUnavailable):
            return  # the audit log itself failed; recording that there would fail the same way
        code = error.code if isinstance(error, BastionError) else InternalError.code
        failure = self._record(
            context,
            action,
            resource,
            Outcome.ERROR,
            reason=code,
            policy_ids=decision.policy_ids,
            details=details,
            data_categories=data_categories,
        )
        self._append_alone(failure, suppress=True)

    @contextmanager
    def read(
        self,
        context: Context,
        action: str,
        resource: Resource,
        *,
        details: dict[str, Any] | None = None,
    ) -> Iterator[Work]:
        """Like ``act`` for actions that only read: the body runs on a snapshot that blocks no writer, and
        its ``allowed`` record is appended (durably) after it, before the caller sees the result. A failed
        append raises ``AuditUnavailable``, so nothing is revealed without its audit record."""
        decision = self._authorize_or_refuse(context, action, resource, details, ())
        try:
            with self._database.read() as session:
                work = Work(session, dict(details or {}))
                yield work
        except Exception as error:
            self._record_failure(context, action, resource, decision, details, (), error)
            raise
        self._append_alone(self._allowed(context, action, resource, decision, work))

    def report_failure(
        self, context: Context, action: str, resource: Resource, reason: str, details: dict[str, Any]
    ) -> None:
        """Audit a failure found after an action's own record was written (e.g. a ciphertext chunk that fails
        authentication after its key was unwrapped). Never raises: the caller is raising its own error."""
        self._append_alone(
            self._record(context, action, resource, Outcome.ERROR, reason=reason, details=details),
            suppress=True,
        )

    def alert(
        self, context: Context, action: str, resource: Resource, reason: str, details: dict[str, Any]
    ) -> None:
        """Record a critical event (e.g. a break-glass credential used) in a transaction of its own, durably,
        before the caller goes on. Raises ``AuditUnavailable`` if it cannot: the caller must then refuse."""
        record = self._record(
            context,
            action,
            resource,
            Outcome.ALLOWED,
            reason=reason,
            details={**details, "severity": "critical"},
        )
        self._append_alone(record)

    def refuse(
        self,
        context: Context,
        action: str,
        resource: Resource,
        reason: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Audit a refusal that is not a policy decision: credentials that did not verify, or a safety check
        that failed after authorization (a model whose signature no longer verifies)."""
        self._append_alone(
            self._record(context, action, resource, Outcome.DENIED, reason=reason, details=details)
        )

    def _decide(self, context: Context, action: str, resource: Resource) -> Decision:
        try:
            return self._authorizer.authorize(context, action, resource)
        except Exception:
            # Fail closed: an authorizer that cannot decide has denied.
            log.exception("authorizer failed; denying", extra={"action": action})
            return Decision(allowed=False, reason="authorizer failed")

    def _allowed(
        self, context: Context, action: str, resource: Resource, decision: Decision, work: Work
    ) -> AuditRecord:
        return self._record(
            context,
            action,
            resource,
            Outcome.ALLOWED,
            reason=decision.reason,
            policy_ids=decision.policy_ids,
            details=work.details,
            data_categories=work.data_categories,
        )

    def _record(
        self,
        context: Context,
        action: str,
        resource: Resource,
        outcome: Outcome,
        *,
        reason: str,
        policy_ids: Sequence[str] = (),
        details: dict[str, Any] | None = None,
        data_categories: Iterable[str] = (),
    ) -> AuditRecord:
        if context.principal.attributes.get("break_glass"):
            # Everything done with an emergency credential pages the SIEM, not only its first use.
            details = {**(details or {}), "severity": "critical", "break_glass": True}
        return AuditRecord(
            occurred_at=self._clock.now(),
            context=context,
            action=action,
            resource=resource,
            outcome=outcome,
            reason=reason,
            policy_ids=tuple(policy_ids),
            data_categories=tuple(sorted(data_categories)),
            details=details or {},
        )

    def _append(self, session: Session, record: AuditRecord) -> None:
        try:
            self._audit.append(session, record)
        except AuditUnavailable:
            raise
        except Exception as error:
            log.exception("audit append failed", extra={"action": record.action})
            raise AuditUnavailable("The action was not performed because its audit record failed.") from error

    def _append_alone(self, record: AuditRecord, *, suppress: bool = False) -> None:
        """Record an outcome in a transaction of its own (denials and failures, whose action rolled back)."""
        try:
            if self._writer is not None:
                self._writer.append(record)
            else:
                with self._database.transaction() as session:
                    self._append(session, record)
        except BastionError:
            if not suppress:
                raise
            # The caller is already raising the action's own error; that one is the more useful to report.
            log.error("could not audit the failure of %s", record.action)

"""The plain append-only audit table (placeholder for the tamper-evident log)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bastion.core.errors import AuditUnavailable
from bastion.core.ids import uuid7
from bastion.core.redaction import find_secrets
from bastion.spine.interfaces import AuditRecord
from bastion.store.tables import AuditEvent

SCHEMA_VERSION = 1


class PlainAuditLog:
    """Appends each record as one row in the caller's transaction."""

    def append(self, session: Session, record: AuditRecord) -> int:
        leaks = find_secrets({"reason": record.reason, "details": dict(record.details)})
        if leaks:
            # Refusing is safer than storing: the action rolls back and the bug surfaces in tests.
            raise AuditUnavailable(
                "An audit record was refused because it contained a secret-shaped value.",
                remedy=f"Remove the secret from {', '.join(leaks)}; store a hash if a reference is needed.",
            )
        context = record.context
        row = AuditEvent(
            event_id=str(uuid7()),
            schema_version=SCHEMA_VERSION,
            occurred_at=record.occurred_at,
            actor_id=context.principal.id,
            actor_type=context.principal.type.value,
            auth_method=context.principal.auth_method,
            action=record.action,
            resource_type=record.resource.type,
            resource_id=record.resource.id,
            outcome=record.outcome.value,
            reason=record.reason,
            policy_ids=list(record.policy_ids),
            request_id=context.request_id,
            source_address=context.source_address,
            user_agent=context.user_agent,
            purpose=context.purpose,
            data_categories=list(record.data_categories),
            details=dict(record.details),
        )
        session.add(row)
        session.flush()
        return row.seq

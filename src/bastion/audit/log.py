"""``MerkleAuditLog``: the tamper-evident implementation of ``bastion.spine.AuditLog``.

Appends run inside the caller's transaction. They serialise on the single ``audit_head`` row (``SELECT ...
FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already admits one writer), so concurrent writers
on any number of processes or replicas get contiguous sequence numbers and one consistent tree. The lock is
held only from the append to the commit: the unit of work appends last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from bastion.audit.canonical import SCHEMA_VERSION, canonical_bytes, leaf_hash
from bastion.audit.merkle import Frontier
from bastion.audit.tree_store import fetch_nodes, store_nodes
from bastion.core.errors import AuditUnavailable
from bastion.core.ids import uuid7
from bastion.core.redaction import find_secrets
from bastion.spine.interfaces import AuditRecord
from bastion.store.bulk import BulkInsert
from bastion.store.tables import AuditEvent, Base

_EVENTS = BulkInsert(Base.metadata.tables[AuditEvent.__tablename__])
_READ_HEAD = "SELECT size FROM audit_head WHERE id = 1"
_LOCK_HEAD = "SELECT size FROM audit_head WHERE id = 1 FOR UPDATE"
_UPDATE_HEAD_QMARK = "UPDATE audit_head SET size = ?, root_hash = ? WHERE id = 1"
_UPDATE_HEAD_FORMAT = "UPDATE audit_head SET size = %s, root_hash = %s WHERE id = 1"


class MerkleAuditLog:
    def append(self, session: Session, record: AuditRecord) -> int:
        return self.append_many(session, [record])[0]

    def append_many(
        self, session: Session, records: Sequence[AuditRecord], *, screened: bool = False
    ) -> list[int]:
        """Append ``records`` in order as consecutive leaves; return their sequence numbers.

        ``screened`` says the caller already ran ``refuse_secrets`` on each record (the group-commit writer
        does, so that one bad record fails only its own caller).
        """
        if not screened:
            for record in records:
                refuse_secrets(record)
        connection = session.connection()
        # Hand-written SQL on purpose, like the tree store's: this runs once per group commit, and building
        # the equivalent expressions costs more than the statements. No value is interpolated.
        sqlite = connection.dialect.name == "sqlite"  # BEGIN IMMEDIATE already holds SQLite's one write lock
        size = connection.exec_driver_sql(_READ_HEAD if sqlite else _LOCK_HEAD).scalar()
        if size is None:
            raise AuditUnavailable("The audit log is not initialised.", remedy="Run 'bastion init'.")
        frontier = load_frontier(session, size)
        rows: list[dict[str, Any]] = []
        created: list[tuple[int, int, bytes]] = []
        for record in records:
            row = event_row(frontier.size, record)
            row["leaf_hash"] = leaf_hash(canonical_bytes(row))
            created.extend(frontier.append(row["leaf_hash"]))
            rows.append(row)
        _EVENTS.execute(session, rows)
        store_nodes(session, created)
        update = _UPDATE_HEAD_QMARK if connection.dialect.paramstyle == "qmark" else _UPDATE_HEAD_FORMAT
        connection.exec_driver_sql(update, (frontier.size, frontier.root()))
        return [row["seq"] for row in rows]


def load_frontier(session: Session, size: int) -> Frontier:
    """The frontier of the tree of ``size`` leaves, from O(log n) stored nodes."""
    keys = Frontier.keys_for(size)
    nodes = fetch_nodes(session, keys)
    return Frontier(size, {level: nodes[(level, index)] for level, index in keys})


def event_row(seq: int, record: AuditRecord) -> dict[str, Any]:
    context = record.context
    return {
        "seq": seq,
        "event_id": str(uuid7()),
        "schema_version": SCHEMA_VERSION,
        "occurred_at": record.occurred_at,
        "actor_id": context.principal.id,
        "actor_type": context.principal.type.value,
        "auth_method": context.principal.auth_method,
        "action": record.action,
        "resource_type": record.resource.type,
        "resource_id": record.resource.id,
        "outcome": record.outcome.value,
        "reason": record.reason,
        "policy_ids": list(record.policy_ids),
        "request_id": context.request_id,
        "source_address": context.source_address,
        "user_agent": context.user_agent,
        "purpose": context.purpose,
        "data_categories": list(record.data_categories),
        "details": dict(record.details),
    }


def refuse_secrets(record: AuditRecord) -> None:
    leaks = find_secrets({"reason": record.reason, "details": dict(record.details)})
    if leaks:
        # Refusing is safer than storing: the action rolls back and the bug surfaces in tests.
        raise AuditUnavailable(
            "An audit record was refused because it contained a secret-shaped value.",
            remedy=f"Remove the secret from {', '.join(leaks)}; store a hash if a reference is needed.",
        )

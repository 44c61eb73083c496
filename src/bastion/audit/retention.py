"""Pruning old audit events without losing verifiability.

Events can be removed only as a whole prefix ``[0, N)`` where N is the size of a stored, signed checkpoint
(``audit.prune``). The interior subtree hashes are kept (they are small: about one per event, never
deleted), and the one leaf hash they don't cover — leaf N-1 when N is odd — is copied into the node table,
so the compact range of ``[0, N)`` remains: its root must equal the retained checkpoint's, which
``bastion audit verify`` checks before recomputing the rest from the remaining leaves. Inclusion proofs for
retained events and consistency proofs from size N onwards keep working.

Events not yet delivered to every configured SIEM sink are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from bastion.audit.query import AUDIT_LOG
from bastion.core.errors import Conflict, InvalidInput
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import AuditCheckpoint, AuditEvent, AuditExportCursor, AuditHead, AuditTreeNode


@dataclass(frozen=True, slots=True)
class PrunePlan:
    before: int
    events: int  # how many rows go
    dry_run: bool


def prune(uow: UnitOfWork, context: Context, before: int, *, dry_run: bool = False) -> PrunePlan:
    details = {"before": before, "dry_run": dry_run}
    with uow.act(context, "audit.prune", AUDIT_LOG, details=details) as work:
        session = work.session
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        if before <= head.pruned_below:
            raise InvalidInput(f"Events below {head.pruned_below} are already pruned.")
        if session.get(AuditCheckpoint, before) is None:
            raise InvalidInput(
                f"There is no checkpoint at tree size {before}: only whole ranges behind one can go.",
                remedy="Run 'bastion audit checkpoint' and prune up to its tree size.",
            )
        lagging = (
            session.execute(select(AuditExportCursor.sink).where(AuditExportCursor.next_seq < before))
            .scalars()
            .all()
        )
        if lagging:
            raise Conflict(
                f"Sinks {', '.join(sorted(lagging))} have not received every event below {before}.",
                remedy="Let the export catch up ('bastion audit export'), then prune.",
            )
        count = session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq < before)
        ).scalar_one()
        work.details["events"] = count
        if not dry_run:
            if before % 2 == 1:  # the compact range of [0, before) ends with a lone leaf: keep its hash
                leaf = session.execute(
                    select(AuditEvent.leaf_hash).where(AuditEvent.seq == before - 1)
                ).scalar_one()
                session.execute(insert(AuditTreeNode).values(level=0, idx=before - 1, hash=leaf))
            session.execute(update(AuditHead).where(AuditHead.id == 1).values(pruned_below=before))
            session.execute(delete(AuditEvent).where(AuditEvent.seq < before))
    return PrunePlan(before=before, events=count, dry_run=dry_run)

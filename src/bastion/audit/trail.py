"""The audit trail's own operations: signed checkpoints published to the witness, and proofs.

Every method is an authorized, audited action (``audit.checkpoint``, ``audit.prove``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bastion.audit.checkpoints import CheckpointSigner, SignedCheckpoint, sign_checkpoint, verifier_key
from bastion.audit.merkle import consistency_path, inclusion_path, range_hash
from bastion.audit.query import AUDIT_LOG, EventView
from bastion.audit.retention import PrunePlan, prune
from bastion.audit.tree_store import with_nodes
from bastion.audit.verify import VerifyReport, verify_log
from bastion.audit.witness import Witness
from bastion.core.clock import Clock
from bastion.core.errors import AuditUnavailable, InvalidInput, NotFound
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import AuditCheckpoint, AuditEvent, AuditHead


@dataclass(frozen=True, slots=True)
class InclusionProof:
    seq: int
    leaf_hash: bytes
    tree_size: int
    root_hash: bytes
    path: list[bytes]
    checkpoint: str
    event: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_hash": self.leaf_hash.hex(),
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "path": [node.hex() for node in self.path],
            "checkpoint": self.checkpoint,
            "event": self.event,
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]
    first_checkpoint: str | None
    second_checkpoint: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "path": [node.hex() for node in self.path],
            "first_checkpoint": self.first_checkpoint,
            "second_checkpoint": self.second_checkpoint,
        }


class AuditTrail:
    def __init__(
        self,
        database: Database,
        uow: UnitOfWork,
        signer: CheckpointSigner,
        witness: Witness | None,
        clock: Clock,
    ) -> None:
        self._database = database
        self._uow = uow
        self._signer = signer
        self._witness = witness
        self._clock = clock

    def origin(self) -> str:
        with self._database.read() as session:
            return _origin(session)

    def verifier_key(self) -> str:
        """The public ``name+id+key`` string auditors pin to check checkpoints (not secret)."""
        return verifier_key(self._signer, self.origin())

    def checkpoint(self, context: Context) -> SignedCheckpoint:
        """Sign the current tree head (or reuse the checkpoint of an unchanged log) and witness it.

        The signature is made before this action's own transaction: signing may itself be an audited key
        use, and SQLite admits one writer at a time."""
        with self._database.read() as session:
            head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
            origin, size, root = head.origin, head.size, head.root_hash
            existing = session.get(AuditCheckpoint, size)
            reused = (
                SignedCheckpoint(size, existing.root_hash, existing.note, existing.created_at)
                if existing is not None
                else None
            )
        note = reused.note if reused else sign_checkpoint(self._signer, origin, size, root)
        with self._uow.act(context, "audit.checkpoint", AUDIT_LOG, details={"tree_size": size}) as work:
            stored = work.session.get(AuditCheckpoint, size)
            if stored is None:
                signed = SignedCheckpoint(size, root, note, self._clock.now())
                work.session.execute(
                    insert(AuditCheckpoint).values(
                        tree_size=size, root_hash=root, note=note, created_at=signed.created_at
                    )
                )
            else:
                signed = SignedCheckpoint(size, stored.root_hash, stored.note, stored.created_at)
        self._publish(signed)
        return signed

    def checkpoint_if_changed(self, context: Context) -> SignedCheckpoint | None:
        """The server's periodic checkpoint: skipped when nothing but checkpointing itself (done by this same
        principal) happened since the last one — otherwise an idle log would grow by its own checkpoints."""
        own_work = ("audit.checkpoint", "keys.sign", "keys.read", "keys.create")
        with self._database.read() as session:
            last = session.execute(select(func.max(AuditCheckpoint.tree_size))).scalar()
            news = session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.seq >= (last or 0),
                    ~(AuditEvent.actor_id == context.principal.id) | ~AuditEvent.action.in_(own_work),
                )
            ).scalar_one()
        if last is not None and news == 0:
            return None
        return self.checkpoint(context)

    def _publish(self, signed: SignedCheckpoint) -> None:
        if self._witness is None or signed.size == 0:
            return
        last = self._witness.latest()
        proof: list[bytes] = []
        if last is not None and 0 < last.checkpoint.size < signed.size:
            with self._database.read() as session:
                proof = with_nodes(
                    session, lambda get: consistency_path(get, last.checkpoint.size, signed.size)
                )
        self._witness.publish(signed.note, proof, self.verifier_key())

    def verify(self, context: Context) -> VerifyReport:
        """Recompute the whole log and check it against every checkpoint and the witness.

        A damaged log may refuse the audit record of this very verification (an attacker can plant a row
        where the next event must go); the report is still returned then, with that failure as a finding,
        because blocking verification is exactly what such an attacker would want.
        """
        reports: list[VerifyReport] = []
        try:
            with self._uow.read(context, "audit.verify", AUDIT_LOG) as work:
                key = verifier_key(self._signer, _origin(work.session))
                reports.append(verify_log(work.session, key, self._witness))
                work.details.update(
                    {
                        "ok": reports[0].ok,
                        "tree_size": reports[0].tree_size,
                        "first_bad_seq": reports[0].first_bad_seq,
                    }
                )
        except AuditUnavailable as error:
            if not reports:
                raise
            reports[0].fail(f"this verification could not be recorded in the audit log: {error.message}")
        return reports[0]

    def prune(self, context: Context, before: int, *, dry_run: bool = False) -> PrunePlan:
        """Remove events ``[0, before)``; ``before`` must be the size of a stored checkpoint."""
        return prune(self._uow, context, before, dry_run=dry_run)

    def prove_inclusion(self, context: Context, seq: int, tree_size: int | None = None) -> InclusionProof:
        """The path from event ``seq`` to the root of a checkpointed tree (the latest one, by default)."""
        if seq < 0:
            raise InvalidInput("seq must not be negative.")
        with self._uow.read(context, "audit.prove", AUDIT_LOG, details={"seq": seq}) as work:
            checkpoint = _covering_checkpoint(work.session, seq + 1, tree_size)
            row = work.session.get(AuditEvent, seq)
            if row is None:
                raise NotFound(f"Audit event {seq} does not exist (or was pruned).")
            path = with_nodes(work.session, lambda get: inclusion_path(get, seq, checkpoint.tree_size))
            return InclusionProof(
                seq=seq,
                leaf_hash=row.leaf_hash,
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                path=path,
                checkpoint=checkpoint.note,
                event=EventView.of(row).as_json(),
            )

    def prove_consistency(self, context: Context, first: int, second: int) -> ConsistencyProof:
        """Proof that the tree of size ``second`` extends the tree of size ``first``."""
        if not 0 < first <= second:
            raise InvalidInput("Consistency needs 0 < from <= to.")
        with self._database.read() as session:
            pruned_below = session.execute(select(AuditHead.pruned_below)).scalar_one()
        if first < pruned_below:
            raise InvalidInput(
                f"Events below {pruned_below} were pruned; prove consistency from {pruned_below} on."
            )
        details = {"first": first, "second": second}
        with self._uow.read(context, "audit.prove", AUDIT_LOG, details=details) as work:
            size = work.session.execute(select(AuditHead.size).where(AuditHead.id == 1)).scalar_one()
            if second > size:
                raise InvalidInput(f"The log has only {size} events.")
            path = with_nodes(work.session, lambda get: consistency_path(get, first, second))
            first_root = with_nodes(work.session, lambda get: range_hash(get, 0, first))
            second_root = with_nodes(work.session, lambda get: range_hash(get, 0, second))
            rows = work.session.execute(
                select(AuditCheckpoint.tree_size, AuditCheckpoint.note).where(
                    AuditCheckpoint.tree_size.in_([first, second])
                )
            )
            notes = {int(size): str(note) for size, note in rows.all()}
        return ConsistencyProof(
            first=first,
            second=second,
            first_root=first_root,
            second_root=second_root,
            path=path,
            first_checkpoint=notes.get(first),
            second_checkpoint=notes.get(second),
        )


def _covering_checkpoint(session: Session, minimum_size: int, tree_size: int | None) -> AuditCheckpoint:
    if tree_size is not None:
        checkpoint = session.get(AuditCheckpoint, tree_size)
        if checkpoint is None:
            raise NotFound(f"There is no checkpoint at tree size {tree_size}.")
        if checkpoint.tree_size < minimum_size:
            raise InvalidInput(f"The checkpoint at size {tree_size} does not cover that event.")
        return checkpoint
    latest = session.execute(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).scalar()
    if latest is None or latest.tree_size < minimum_size:
        raise NotFound("No checkpoint covers that event yet.", remedy="Run 'bastion audit checkpoint'.")
    return latest


def _origin(session: Session) -> str:
    return session.execute(select(AuditHead.origin).where(AuditHead.id == 1)).scalar_one()

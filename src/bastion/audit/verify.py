"""``bastion audit verify``: recompute the log from its leaves and hold it against every checkpoint.

What is checked, streaming in ``seq`` order with O(log n) memory:
- sequence numbers are contiguous from the prune point (a gap is a deleted row; a row past the head an
  inserted one);
- each event's leaf hash matches its recomputed canonical bytes (an altered, inserted or reordered row —
  ``seq`` is part of the leaf — fails here, named by its ``seq``);
- the recomputed root equals every stored checkpoint's root at its size, and every checkpoint's signature
  verifies (catches rows altered together with their leaf hashes);
- the log still contains every tree the witness holds, signed by the key the witness pinned (catches a full
  rewrite with recomputed hashes and deleted checkpoints, and a swapped signing key);
- the head row agrees with the recomputed tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.audit.canonical import EVENT_FIELDS, canonical_bytes, leaf_hash
from bastion.audit.log import load_frontier
from bastion.audit.merkle import Frontier
from bastion.audit.tree_store import TreeIntegrityError
from bastion.audit.witness import Witness, WitnessError
from bastion.client.tlog import VerificationError, verify_checkpoint
from bastion.store.tables import AuditCheckpoint, AuditEvent, AuditHead

_BATCH = 5000
_MAX_REPORTED = 20


@dataclass
class VerifyReport:
    tree_size: int = 0
    events_checked: int = 0
    checkpoints_checked: int = 0
    witnessed_checked: int = 0
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str, seq: int | None = None, *, precise: bool = True) -> None:
        """Record a problem. A ``precise`` seq names the bad event itself; an imprecise one only the start
        of a range known to hold it, and is kept only when nothing more precise was found."""
        self.problems.append(problem)
        if seq is None:
            return
        if self.first_bad_seq is None or (precise and seq < self.first_bad_seq):
            self.first_bad_seq = seq

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "witnessed_checked": self.witnessed_checked,
            "first_bad_seq": self.first_bad_seq,
            "problems": self.problems,
        }


def verify_log(session: Session, verifier_key: str, witness: Witness | None) -> VerifyReport:
    report = VerifyReport()
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    stored = {row.tree_size: row for row in session.scalars(select(AuditCheckpoint))}
    witnessed = _witnessed(witness, verifier_key, report)
    targets = {*stored, *witnessed}  # sizes whose recomputed root we need
    frontier = _starting_frontier(session, head.pruned_below, stored, verifier_key, report)
    if frontier is None:
        return report
    roots: dict[int, bytes] = {frontier.size: frontier.root()} if frontier.size in targets else {}
    gap = _recompute(session, head.pruned_below, frontier, targets, roots, report)
    report.tree_size = frontier.size
    if gap:
        return report  # everything past a missing event is a consequence of it, not news
    _check_head(head, frontier, report)
    # Trees older than the prune point cannot be recomputed; the retained checkpoint at the prune point,
    # checked above, is consistent with them (the witness verified each step when it accepted them).
    _check_stored(
        {size: row for size, row in stored.items() if size >= head.pruned_below},
        roots,
        frontier.size,
        verifier_key,
        report,
    )
    _check_witnessed(
        {size: root for size, root in witnessed.items() if size >= head.pruned_below},
        roots,
        frontier.size,
        report,
    )
    return report


def _recompute(
    session: Session,
    start: int,
    frontier: Frontier,
    targets: set[int],
    roots: dict[int, bytes],
    report: VerifyReport,
) -> bool:
    """Stream the events into ``frontier``; record roots at ``targets``. True if an event is missing."""
    statement = select(AuditEvent).where(AuditEvent.seq >= start).order_by(AuditEvent.seq)
    rows = session.execute(statement.execution_options(yield_per=_BATCH)).scalars()
    mismatched = 0
    try:
        for row in rows:
            if row.seq != frontier.size:
                report.fail(f"event {frontier.size} is missing (next present is {row.seq})", frontier.size)
                return True
            recomputed = leaf_hash(canonical_bytes({name: getattr(row, name) for name in EVENT_FIELDS}))
            if recomputed != row.leaf_hash:
                mismatched += 1
                if mismatched <= _MAX_REPORTED:
                    report.fail(
                        f"event {row.seq} does not match its leaf hash (altered, inserted or moved)", row.seq
                    )
            # Go on with the stored hash: every altered row gets named, and the checkpoints still judge the
            # stored hashes, which catches rows rewritten together with their leaf hash.
            frontier.append(row.leaf_hash)
            report.events_checked += 1
            if frontier.size in targets:
                roots[frontier.size] = frontier.root()
    finally:
        rows.close()  # a server-side cursor on PostgreSQL
    if mismatched > _MAX_REPORTED:
        report.fail(f"... and {mismatched - _MAX_REPORTED} more events that do not match their leaf hash")
    return False


def _starting_frontier(
    session: Session, pruned_below: int, stored: dict[int, AuditCheckpoint], key: str, report: VerifyReport
) -> Frontier | None:
    """Empty, or after pruning the stored compact range at the prune point, which a retained checkpoint
    at exactly that size must vouch for."""
    if pruned_below == 0:
        return Frontier()
    anchor = stored.get(pruned_below)
    if anchor is None:
        report.fail(f"events below {pruned_below} were pruned without a retained checkpoint", pruned_below)
        return None
    try:
        frontier = load_frontier(session, pruned_below)
    except TreeIntegrityError as error:
        report.fail(
            f"the retained subtree hashes below {pruned_below} are damaged: {error.message}", pruned_below
        )
        return None
    if frontier.root() != anchor.root_hash:
        report.fail(
            f"the retained subtree hashes do not match the checkpoint at {pruned_below}", pruned_below
        )
        return None
    return frontier


def _witnessed(witness: Witness | None, verifier_key: str, report: VerifyReport) -> dict[int, bytes]:
    if witness is None:
        return {}
    pinned = witness.pinned_key()
    if pinned is not None and pinned != verifier_key:
        report.fail("the checkpoint signing key differs from the one the witness pinned")
    try:
        return {entry.checkpoint.size: entry.checkpoint.root_hash for entry in witness.checkpoints()}
    except WitnessError as error:
        report.fail(error.message)
        return {}


def _check_head(head: AuditHead, frontier: Frontier, report: VerifyReport) -> None:
    if head.size > frontier.size:
        report.fail(f"the head records {head.size} events but only {frontier.size} verify", frontier.size)
    elif head.size < frontier.size:
        report.fail(f"there are events beyond the head's size {head.size}", head.size)
    elif head.root_hash != frontier.root():
        report.fail("the head's root hash does not match the recomputed tree")


def _check_stored(
    stored: dict[int, AuditCheckpoint], roots: dict[int, bytes], size: int, key: str, report: VerifyReport
) -> None:
    previous = 0
    for tree_size in sorted(stored):
        row = stored[tree_size]
        report.checkpoints_checked += 1
        try:
            signed = verify_checkpoint(row.note, key)
        except VerificationError:
            report.fail(f"the checkpoint at size {tree_size} has an invalid signature")
            continue
        if signed.size != tree_size or signed.root_hash != row.root_hash:
            report.fail(f"the checkpoint row at size {tree_size} disagrees with its signed note")
        if tree_size > size:
            report.fail(f"the log was truncated: a checkpoint covers {tree_size} events, {size} remain", size)
        elif roots.get(tree_size) != signed.root_hash:
            report.fail(
                f"events {previous}..{tree_size - 1} do not match the checkpoint at size {tree_size}",
                previous,
                precise=False,
            )
        previous = tree_size


def _check_witnessed(
    witnessed: dict[int, bytes], roots: dict[int, bytes], size: int, report: VerifyReport
) -> None:
    previous = 0
    for tree_size in sorted(witnessed):
        report.witnessed_checked += 1
        if tree_size > size:
            report.fail(f"the log is shorter than the witnessed tree of size {tree_size}", size)
        elif roots.get(tree_size) != witnessed[tree_size]:
            report.fail(
                f"history was rewritten: the log does not match the witnessed tree of size {tree_size}",
                previous,
                precise=False,
            )
        previous = tree_size

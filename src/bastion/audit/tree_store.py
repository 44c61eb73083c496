"""Reading and writing the Merkle tree's stored hashes inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from bastion.audit.merkle import NodeGetter, NodeKey, needed_nodes
from bastion.core.errors import BastionError
from bastion.store.tables import AuditEvent, AuditTreeNode

T = TypeVar("T")
_CHUNK = 200  # keys per query; well under every backend's bound-parameter limit


class TreeIntegrityError(BastionError):
    """A hash the tree needs is missing from the store: rows were removed or the tree is corrupt."""

    code = "audit.integrity"
    title = "Audit log integrity failure"
    default_remedy = "Run 'bastion audit verify' to locate the damage."


def fetch_nodes(session: Session, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    """Stored hashes for ``keys``: leaves from events; higher levels and pruned leaves from nodes."""
    wanted = set(keys)
    found: dict[NodeKey, bytes] = {}
    leaves = sorted(index for level, index in wanted if level == 0)
    for seqs in _chunks(leaves):
        leaf_rows = session.execute(
            select(AuditEvent.seq, AuditEvent.leaf_hash).where(AuditEvent.seq.in_(seqs))
        )
        found.update({(0, seq): leaf for seq, leaf in leaf_rows})
    rest = sorted(key for key in wanted if key not in found)
    for node_keys in _chunks(rest):
        condition = or_(
            *(and_(AuditTreeNode.level == level, AuditTreeNode.idx == index) for level, index in node_keys)
        )
        node_rows = session.execute(
            select(AuditTreeNode.level, AuditTreeNode.idx, AuditTreeNode.hash).where(condition)
        )
        found.update({(level, index): value for level, index, value in node_rows})
    missing = wanted - found.keys()
    if missing:
        level, index = min(missing)
        raise TreeIntegrityError(f"The audit tree is missing node (level {level}, index {index}).")
    return found


def with_nodes(session: Session, plan: Callable[[NodeGetter], T]) -> T:
    """Run a tree computation with every node it reads fetched in a few queries up front."""
    nodes = fetch_nodes(session, needed_nodes(plan))
    return plan(lambda level, index: nodes[(level, index)])


def store_nodes(session: Session, created: Iterable[tuple[int, int, bytes]]) -> None:
    """Persist the interior nodes an append completed (leaves are stored with their events)."""
    rows = [{"level": level, "idx": index, "hash": value} for level, index, value in created if level > 0]
    if rows:
        session.execute(insert(AuditTreeNode), rows)


def _chunks(items: list[T]) -> Iterable[list[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

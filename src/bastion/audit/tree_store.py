"""Reading and writing the Merkle tree's stored hashes inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy.orm import Session

from bastion.audit.merkle import NodeGetter, NodeKey, needed_nodes
from bastion.core.errors import BastionError
from bastion.store.bulk import BulkInsert
from bastion.store.tables import AuditTreeNode, Base

T = TypeVar("T")
_CHUNK = 200  # keys per query; well under every backend's bound-parameter limit
_NODES = BulkInsert(Base.metadata.tables[AuditTreeNode.__tablename__])


class TreeIntegrityError(BastionError):
    """A hash the tree needs is missing from the store: rows were removed or the tree is corrupt."""

    code = "audit.integrity"
    title = "Audit log integrity failure"
    default_remedy = "Run 'bastion audit verify' to locate the damage."


def fetch_nodes(session: Session, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    """Stored hashes for ``keys``: leaves from events; higher levels and pruned leaves from nodes.

    Hand-written SQL on purpose: this is the proof hot path, and building an equivalent SQLAlchemy
    expression per proof costs more than the queries themselves. Only placeholders are interpolated.
    """
    wanted = set(keys)
    found: dict[NodeKey, bytes] = {}
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    leaves = sorted(index for level, index in wanted if level == 0)
    for seqs in _chunks(leaves):
        sql = f"SELECT seq, leaf_hash FROM audit_events WHERE seq IN ({', '.join([mark] * len(seqs))})"  # noqa: S608
        found.update({(0, seq): bytes(leaf) for seq, leaf in connection.exec_driver_sql(sql, tuple(seqs))})
    rest = sorted(key for key in wanted if key not in found)
    for node_keys in _chunks(rest):
        condition = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(node_keys))
        sql = f"SELECT level, idx, hash FROM audit_tree_nodes WHERE {condition}"  # noqa: S608
        params = tuple(value for key in node_keys for value in key)
        found.update(
            {(level, index): bytes(value) for level, index, value in connection.exec_driver_sql(sql, params)}
        )
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
    _NODES.execute(
        session,
        [{"level": level, "idx": index, "hash": value} for level, index, value in created if level > 0],
    )


def _chunks(items: list[T]) -> Iterable[list[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

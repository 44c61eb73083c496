"""RFC 9162 Merkle tree arithmetic over stored complete-subtree hashes.

A node (level L, index i) is the hash of the complete subtree over leaves [i * 2**L, (i + 1) * 2**L).
Appending leaf n stores it and every subtree it completes (amortised one node per leaf), so the hash of any
range the RFC's proof algorithms ask for — MTH(D[a:b]) with a aligned — is a combination of at most
O(log n) stored nodes. Nothing here touches the database: callers pass a ``NodeGetter``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bastion.audit.canonical import EMPTY_ROOT, node_hash

NodeKey = tuple[int, int]  # (level, index)
NodeGetter = Callable[[int, int], bytes]


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(get: NodeGetter, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC algorithms produce (start aligned to the split points)."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return get(level, start >> level)
    k = largest_power_of_two_below(size)
    return node_hash(range_hash(get, start, start + k), range_hash(get, start + k, end))


def inclusion_path(get: NodeGetter, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1, leaf to root."""
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append(range_hash(get, start + k, end))
            end = start + k
        else:
            path.append(range_hash(get, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(get: NodeGetter, first: int, second: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1."""
    if not 0 < first <= second:
        raise ValueError("consistency needs 0 < first <= second")
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(range_hash(get, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(get, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(range_hash(get, start, end))
    proof.reverse()
    return proof


def needed_nodes(plan: Callable[[NodeGetter], object]) -> set[NodeKey]:
    """Run ``plan`` with a recording getter to learn which stored nodes it reads, so they can be fetched
    in one query before the real run."""
    keys: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        keys.add((level, index))
        return b"\x00" * 32

    plan(record)
    return keys


class Frontier:
    """The right edge of the tree: enough state to append leaves and compute the root, O(log n) hashes.

    ``nodes[level]`` is the hash of the complete subtree at that level awaiting a right sibling, present
    exactly where bit ``level`` of ``size`` is set.
    """

    def __init__(self, size: int = 0, nodes: dict[int, bytes] | None = None) -> None:
        self.size = size
        self.nodes = dict(nodes or {})

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        """The stored nodes that make up the frontier of a tree of ``size`` leaves."""
        keys = []
        offset = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                keys.append((level, offset >> level))
                offset += 1 << level
        return keys

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the (level, index, hash) of every complete subtree it finishes, leaf first."""
        created = [(0, self.size, leaf)]
        current, level, index = leaf, 0, self.size
        while level in self.nodes:
            current = node_hash(self.nodes.pop(level), current)
            level, index = level + 1, index >> 1
            created.append((level, index, current))
        self.nodes[level] = current
        self.size += 1
        return created

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        levels = sorted(self.nodes)
        current = self.nodes[levels[0]]
        for level in levels[1:]:
            current = node_hash(self.nodes[level], current)
        return current


def extend(frontier: Frontier, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
    created: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        created.extend(frontier.append(leaf))
    return created

"""The tree arithmetic against a literal transcription of RFC 9162 and the CT test vectors, and the SDK's
independent verifier against both (including forged proofs)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit.canonical import leaf_hash, node_hash
from bastion.audit.merkle import Frontier, consistency_path, inclusion_path, range_hash
from bastion.client.tlog import VerificationError, verify_consistency, verify_inclusion

# RFC 6962 / certificate-transparency test inputs and the roots of their prefixes.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162 section 2.1.1, literally."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def stored(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    nodes: dict[tuple[int, int], bytes] = {}
    frontier = Frontier()
    for leaf in leaves:
        for level, index, value in frontier.append(leaf):
            nodes[(level, index)] = value
    return nodes


def hashed(count: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(count)]


def test_ct_vectors() -> None:
    leaves = [leaf_hash(data) for data in CT_LEAVES]
    frontier = Frontier()
    for size, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        assert frontier.root().hex() == CT_ROOTS[size - 1]
        assert mth(leaves[:size]).hex() == CT_ROOTS[size - 1]


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_paths_match_the_rfc_and_verify(size: int, data: st.DataObject) -> None:
    leaves = hashed(size)
    nodes = stored(leaves)
    get = lambda level, index: nodes[(level, index)]  # noqa: E731
    root = mth(leaves)
    assert range_hash(get, 0, size) == root
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_path(get, index, size)
    assert proof == path(index, leaves)
    verify_inclusion(leaves[index], index, size, proof, root)
    first = data.draw(st.integers(min_value=1, max_value=size))
    consistency = consistency_path(get, first, size)
    assert consistency == subproof(first, leaves, True)
    verify_consistency(first, size, mth(leaves[:first]), root, consistency)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=200), st.data())
def test_forged_inclusion_proofs_fail(size: int, data: st.DataObject) -> None:
    leaves = hashed(size)
    root = mth(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = path(index, leaves)
    other = (index + 1) % size
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[other], index, size, proof, root)  # wrong leaf
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], other, size, proof, root)  # wrong position
    if proof:
        bad = [*proof]
        bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
        with pytest.raises(VerificationError):
            verify_inclusion(leaves[index], index, size, bad, root)  # flipped bit
        with pytest.raises(VerificationError):
            verify_inclusion(leaves[index], index, size, proof[:-1], root)  # truncated
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], index, size, [*proof, root], root)  # extended
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[index], size, size, proof, root)  # index outside the tree


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=200), st.data())
def test_forged_consistency_proofs_fail(size: int, data: st.DataObject) -> None:
    leaves = hashed(size)
    first = data.draw(st.integers(min_value=1, max_value=size - 1))
    proof = subproof(first, leaves, True)
    old, new = mth(leaves[:first]), mth(leaves)
    forked = mth([*leaves[: first - 1], leaf_hash(b"forged"), *leaves[first:]])
    with pytest.raises(VerificationError):
        verify_consistency(first, size, old, forked, proof)  # history rewritten
    with pytest.raises(VerificationError):
        verify_consistency(first, size, new, new, proof)
    bad = [*proof]
    bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
    with pytest.raises(VerificationError):
        verify_consistency(first, size, old, new, bad)
    with pytest.raises(VerificationError):
        verify_consistency(first, size, old, new, [])
    with pytest.raises(VerificationError):
        verify_consistency(size, first, new, old, proof)


def test_frontier_keys_describe_the_right_edge() -> None:
    assert Frontier.keys_for(0) == []
    assert Frontier.keys_for(1) == [(0, 0)]
    assert Frontier.keys_for(6) == [(2, 0), (1, 2)]
    assert Frontier.keys_for(7) == [(2, 0), (1, 2), (0, 6)]

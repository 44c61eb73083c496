"""Offline verification of Bastion's audit log, with no dependency on the server.

Everything an auditor needs to check a proof printed by ``bastion audit prove`` / ``consistency`` against a
checkpoint they trust (from the witness, say), written from RFC 9162 and the C2SP signed-note and
tlog-checkpoint specifications independently of the server's code::

    from bastion.client.tlog import verify_checkpoint, verify_inclusion
    checkpoint = verify_checkpoint(note_text, verifier_key)       # signature and format
    verify_inclusion(leaf_hash, index, checkpoint.size, path, checkpoint.root_hash)

Every ``verify_*`` function returns normally when the proof holds and raises ``VerificationError``
otherwise. ``verifier_key`` is the ``name+keyid+base64`` string from ``bastion audit key``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_ED25519 = 0x01  # signed-note signature type for Ed25519
_DASH = "\u2014"  # the em dash that starts a signature line


class VerificationError(Exception):
    """A proof, leaf or checkpoint did not verify."""


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def event_leaf_hash(event: dict[str, Any]) -> bytes:
    """The leaf hash of an event as ``GET /v1/audit/events`` or ``bastion audit search --json`` print it."""
    fields = (
        "seq",
        "event_id",
        "schema_version",
        "occurred_at",
        "actor_id",
        "actor_type",
        "auth_method",
        "action",
        "resource_type",
        "resource_id",
        "outcome",
        "reason",
        "policy_ids",
        "request_id",
        "source_address",
        "user_agent",
        "purpose",
        "data_categories",
        "details",
    )
    document = {name: event[name] for name in fields}
    return hash_leaf(
        json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    )


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, path: list[bytes], root_hash: bytes
) -> None:
    """RFC 9162 section 2.1.3.2."""
    if index >= tree_size or index < 0:
        raise VerificationError("leaf index is outside the tree")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = _hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root_hash:
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(  # noqa: PLR0912 - mirrors RFC 9162 step by step
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: the tree of size ``second`` extends the tree of size ``first``."""
    if first < 0 or first > second:
        raise VerificationError("first must not exceed second")
    if first == second:
        if path or first_hash != second_hash:
            raise VerificationError("equal sizes need equal roots and an empty proof")
        return
    if first == 0:
        if path:
            raise VerificationError("a proof from the empty tree must be empty")
        return
    if not path:
        raise VerificationError("consistency proof is empty")
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = _hash_children(c, fr), _hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = _hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != first_hash or sr != second_hash:
        raise VerificationError("consistency proof does not match the two roots")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        try:
            name, key_id_hex, encoded = text.strip().split("+", 2)  # base64 may contain "+"
            raw = base64.b64decode(encoded, validate=True)
            key_id = bytes.fromhex(key_id_hex)
        except ValueError as error:
            raise VerificationError("malformed verifier key") from error
        if len(raw) != 33 or raw[0] != _ED25519 or len(key_id) != 4:
            raise VerificationError("verifier key is not an Ed25519 signed-note key")
        if signed_note_key_id(name, raw[1:]) != key_id:
            raise VerificationError("verifier key id does not match its key")
        return cls(name=name, key_id=key_id, public_key=Ed25519PublicKey.from_public_bytes(raw[1:]))


def signed_note_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ED25519]) + public_key).digest()[:4]


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerificationError(
            "checkpoint body must have origin, size and root lines, each ending in newline"
        )
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise VerificationError("malformed checkpoint origin or size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError as error:
        raise VerificationError("malformed checkpoint root hash") from error
    if len(root) != 32:
        raise VerificationError("checkpoint root hash must be 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root_hash=root, extensions=tuple(extensions))


def verify_checkpoint(note: str, verifier_key: str | VerifierKey) -> Checkpoint:
    """Check a C2SP signed note carries a valid signature by ``verifier_key``; return its checkpoint.

    The key's name must equal the checkpoint's origin, so a signature for one log never vouches for another.
    """
    key = verifier_key if isinstance(verifier_key, VerifierKey) else VerifierKey.parse(verifier_key)
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise VerificationError("a signed note needs a blank line before its signatures")
    body += "\n"
    checkpoint = parse_checkpoint_body(body)
    if checkpoint.origin != key.name:
        raise VerificationError("checkpoint origin does not match the verifier key name")
    for line in signatures.split("\n"):
        if not line.startswith(_DASH + " "):
            continue
        name, _, encoded = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if name != key.name or raw[:4] != key.key_id:
            continue
        try:
            key.public_key.verify(raw[4:], body.encode())
        except InvalidSignature as error:
            raise VerificationError("checkpoint signature is invalid") from error
        return checkpoint
    raise VerificationError("no signature by the verifier key")

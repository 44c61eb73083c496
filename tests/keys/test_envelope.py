"""Streaming envelope encryption: round trips at every boundary, and every tamper fails closed with the
same opaque error, leaves no output behind, and tells the audit log what failed."""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bastion.keys.envelope import (
    DEFAULT_CHUNK,
    TAG,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    read_header,
    rewrap_file,
)
from bastion.keys.errors import CryptoError
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyPurpose
from bastion.spine import Context
from bastion.store import Database
from bastion.store.tables import AuditEvent

CHUNK = 64


def seal(keys: KeyManager, ctx: Context, data: bytes, object_id: str = "obj-1", chunk: int = CHUNK) -> bytes:
    out = io.BytesIO()
    encrypt_stream(keys, ctx, "kek", object_id, io.BytesIO(data), out, chunk_size=chunk)
    return out.getvalue()


def unseal(keys: KeyManager, ctx: Context, blob: bytes, object_id: str = "obj-1") -> bytes:
    out = io.BytesIO()
    decrypt_stream(keys, ctx, object_id, io.BytesIO(blob), out)
    return out.getvalue()


@pytest.fixture
def kek(keys: KeyManager, ctx: Context) -> KeyManager:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    return keys


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_round_trip_at_chunk_boundaries(kek: KeyManager, ctx: Context, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    blob = seal(kek, ctx, data)
    header_length = len(read_header(io.BytesIO(blob)).encode())
    chunks = max(1, -(-size // CHUNK))  # a full last chunk is flagged final: no empty trailer
    assert len(blob) == header_length + size + chunks * TAG
    assert unseal(kek, ctx, blob) == data


def _chunk_offsets(blob: bytes) -> tuple[int, int]:
    header = read_header(io.BytesIO(blob))
    return len(header.encode()), header.chunk_size + TAG


def flip(position: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    def tamper(blob: bytes) -> bytes:
        at = position(blob)
        return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]

    return tamper


def _header_field(blob: bytes, field: str) -> int:
    name_length = blob[5]
    offsets = {
        "magic": 0,
        "name": 6,
        "version": 6 + name_length + 3,
        "wrapped": 6 + name_length + 6 + 5,
        "prefix": len(read_header(io.BytesIO(blob)).encode()) - 8,
        "chunk_size": len(read_header(io.BytesIO(blob)).encode()) - 1,
    }
    return offsets[field]


def drop_last_chunk(blob: bytes) -> bytes:
    start, size = _chunk_offsets(blob)
    body = blob[start:]
    last = (len(body) - 1) // size * size
    return blob[: start + last]


def swap_chunks(blob: bytes) -> bytes:
    start, size = _chunk_offsets(blob)
    first, second = blob[start : start + size], blob[start + size : start + 2 * size]
    return blob[:start] + second + first + blob[start + 2 * size :]


def duplicate_chunk(blob: bytes) -> bytes:
    start, size = _chunk_offsets(blob)
    return blob[: start + size] + blob[start : start + size] + blob[start + size :]


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "header magic": flip(lambda b: _header_field(b, "magic")),
    "header key name": flip(lambda b: _header_field(b, "name")),
    "header key version": flip(lambda b: _header_field(b, "version")),
    "header wrapped key": flip(lambda b: _header_field(b, "wrapped")),
    "header nonce prefix": flip(lambda b: _header_field(b, "prefix")),
    "header chunk size": flip(lambda b: _header_field(b, "chunk_size")),
    "bit in first chunk": flip(lambda b: _chunk_offsets(b)[0] + 3),
    "bit in last tag": flip(lambda b: len(b) - 1),
    "dropped last chunk": drop_last_chunk,
    "truncated mid-chunk": lambda b: b[:-7],
    "chunks swapped": swap_chunks,
    "chunk duplicated": duplicate_chunk,
    "appended garbage": lambda b: b + b"\x00" * 20,
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_fails_closed_with_one_opaque_error(
    kek: KeyManager, ctx: Context, tmp_path: Path, kdb: Database, name: str
) -> None:
    blob = seal(kek, ctx, b"secret model weights " * 20)
    source = tmp_path / "object.bste"
    source.write_bytes(TAMPERS[name](blob))
    target = tmp_path / "plain.bin"
    with pytest.raises(CryptoError) as raised:
        decrypt_file(kek, ctx, source, target, object_id="obj-1")
    assert raised.value.message == "The data could not be decrypted or verified."
    assert raised.value.extra == {}
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []  # no partial output left
    with kdb.read() as session:
        failures = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "keys.decrypt", AuditEvent.outcome == "error")
        ).all()
        assert failures, "the audit log must say what failed"


def test_splicing_between_objects_and_moving_an_object_fail(kek: KeyManager, ctx: Context) -> None:
    first = seal(kek, ctx, b"A" * (3 * CHUNK), "obj-1")
    second = seal(kek, ctx, b"B" * (3 * CHUNK), "obj-2")
    start, size = _chunk_offsets(first)
    spliced = first[: start + size] + second[start + size : start + 2 * size] + first[start + 2 * size :]
    with pytest.raises(CryptoError):
        unseal(kek, ctx, spliced, "obj-1")
    with pytest.raises(CryptoError):
        unseal(kek, ctx, first, "obj-2")  # a whole ciphertext presented as another object


def test_wrong_key_version_fails_closed(kek: KeyManager, ctx: Context) -> None:
    blob = seal(kek, ctx, b"data")
    kek.rotate(ctx, "kek")
    header = read_header(io.BytesIO(blob))
    at = 6 + len(header.key_name)
    forged = blob[:at] + struct.pack(">I", 2) + blob[at + 4 :]  # claims the (real) version 2
    with pytest.raises(CryptoError):
        unseal(kek, ctx, forged)
    assert unseal(kek, ctx, blob) == b"data"


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize("chunks", [1, 200])
def test_rotation_rewraps_only_the_header(kek: KeyManager, ctx: Context, tmp_path: Path, chunks: int) -> None:
    data = b"x" * (CHUNK * chunks)
    path = tmp_path / "object.bste"
    path.write_bytes(seal(kek, ctx, data))
    before = path.read_bytes()
    header_length = len(read_header(io.BytesIO(before)).encode())
    kek.rotate(ctx, "kek")
    assert rewrap_file(kek, ctx, path, "obj-1") == 2
    after = path.read_bytes()
    assert after[header_length:] == before[header_length:]  # not one byte of data touched
    assert read_header(io.BytesIO(after)).version == 2
    counting = CountingFile(after)
    read_header(counting)
    assert counting.read_bytes == header_length  # and reading the header is all rotation needs
    kek.destroy(ctx, "kek", version=1)  # the old version can go: nothing needs it any more
    assert unseal(kek, ctx, after) == data


def test_destroyed_key_makes_objects_unrecoverable(kek: KeyManager, ctx: Context) -> None:
    blob = seal(kek, ctx, b"patient records")
    kek.destroy(ctx, "kek")
    with pytest.raises(Exception, match=r"destroyed|could not be decrypted"):
        unseal(kek, ctx, blob)


def test_files_round_trip_and_memory_stays_flat(kek: KeyManager, ctx: Context, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for i in range(24):  # 24 MiB
            handle.write(bytes([i]) * DEFAULT_CHUNK)
    sealed, opened = tmp_path / "big.bste", tmp_path / "big.out"
    tracemalloc.start()
    encrypt_file(kek, ctx, "kek", source, sealed, object_id="big")
    decrypt_file(kek, ctx, sealed, opened, object_id="big")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert opened.read_bytes() == source.read_bytes()
    assert peak < 8 * DEFAULT_CHUNK  # a few chunks in flight, whatever the file size

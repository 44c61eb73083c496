"""Envelope encryption of objects of any size, streaming, in constant memory.

Format v1 (all integers big-endian)::

    "BSTE" | 0x01 | key-name length (1) | key name | key version (4) | wrapped-key length (2) | wrapped key
    | nonce prefix (7) | chunk size (4) | chunk 0 | chunk 1 | ... | final chunk

Each chunk is AES-256-GCM under a fresh per-object data key, with nonce = prefix (7) || chunk index (4) ||
final flag (1) — Tink's streaming-AEAD construction — so reordering, dropping, duplicating or truncating
chunks fails authentication. Every chunk's associated data is a digest of the header's immutable fields and
the *object id* the caller names, so a ciphertext moved to another object, or spliced from one, fails too.
The data key is wrapped by the key manager with the same binding.

The key version and wrapped key are the only mutable header fields and have fixed sizes: rotating the
key-encryption key rewrites the header in place (``rewrap_file``) without touching — or reading — the data.
Every failure is the one opaque ``CryptoError``; decryption writes to a temporary file and renames it only
once the final chunk has authenticated, so a failed decryption leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.keys.errors import CryptoError, KeyNotFound
from bastion.keys.manager import KeyManager
from bastion.spine.context import Context

MAGIC = b"BSTE"
FORMAT_V1 = 1
TAG = 16
NONCE_PREFIX = 7
DEFAULT_CHUNK = 1 << 20  # 1 MiB: big enough that per-chunk overhead vanishes, small enough to stay flat
MAX_CHUNK = 1 << 26
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Header:
    key_name: str
    version: int
    wrapped: bytes
    nonce_prefix: bytes
    chunk_size: int

    def encode(self) -> bytes:
        name = self.key_name.encode()
        return (
            MAGIC
            + bytes([FORMAT_V1, len(name)])
            + name
            + struct.pack(">IH", self.version, len(self.wrapped))
            + self.wrapped
            + self.nonce_prefix
            + struct.pack(">I", self.chunk_size)
        )

    def binding(self, object_id: str) -> bytes:
        """Associated data for the data key and every chunk: the immutable header fields and the object id."""
        parts = (
            b"bastion-envelope-v1",
            self.key_name.encode(),
            self.nonce_prefix,
            struct.pack(">I", self.chunk_size),
            object_id.encode(),
        )
        return hashlib.sha256(b"".join(struct.pack(">I", len(part)) + part for part in parts)).digest()


def read_header(src: BinaryIO) -> Header:
    try:
        fixed = _read_exact(src, 6)
        if fixed[:4] != MAGIC or fixed[4] != FORMAT_V1:
            raise ValueError("not a Bastion envelope")
        name = _read_exact(src, fixed[5]).decode()
        version, wrapped_length = struct.unpack(">IH", _read_exact(src, 6))
        wrapped = _read_exact(src, wrapped_length)
        prefix = _read_exact(src, NONCE_PREFIX)
        (chunk_size,) = struct.unpack(">I", _read_exact(src, 4))
    except (ValueError, UnicodeDecodeError, struct.error) as error:
        raise CryptoError from error
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise CryptoError
    return Header(name, version, wrapped, prefix, chunk_size)


def encrypt_stream(
    keys: KeyManager,
    context: Context,
    key_name: str,
    object_id: str,
    src: BinaryIO,
    dst: BinaryIO,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError("chunk size out of range")
    draft = Header(key_name, 0, b"", secrets.token_bytes(NONCE_PREFIX), chunk_size)
    binding = draft.binding(object_id)
    data_key = keys.generate_data_key(context, key_name, binding)
    header = Header(key_name, data_key.version, data_key.wrapped, draft.nonce_prefix, chunk_size)
    dst.write(header.encode())
    aead = AESGCM(data_key.plaintext)
    # Two input buffers (the current chunk and the look-ahead that tells whether it is the last) and one
    # output buffer, reused for every chunk: no per-chunk allocation or copy beyond the cipher itself.
    buffers, output = (bytearray(chunk_size), bytearray(chunk_size)), bytearray(chunk_size + TAG)
    index, current, length = 0, 0, _readinto_full(src, buffers[0])
    while True:
        following = _readinto_full(src, buffers[1 - current]) if length == chunk_size else 0
        last = following == 0
        sealed = memoryview(output)[: length + TAG]
        aead.encrypt_into(
            _nonce(header.nonce_prefix, index, last), memoryview(buffers[current])[:length], binding, sealed
        )
        dst.write(sealed)
        if progress:
            progress(length)
        if last:
            return
        index, current, length = index + 1, 1 - current, following


class Unwrapper(Protocol):
    """What decryption needs of a key manager (``KeyManager``, or a restore's bootstrap unwrapper)."""

    def unwrap(self, context: Context, name: str, version: int, wrapped: bytes, aad: bytes) -> bytes: ...

    def report_failure(
        self, context: Context, name: str, reason: str, details: dict[str, object]
    ) -> None: ...


def decrypt_stream(
    keys: Unwrapper,
    context: Context,
    object_id: str,
    src: BinaryIO,
    dst: BinaryIO,
    *,
    progress: Progress | None = None,
) -> None:
    """Writes plaintext chunk by chunk as each authenticates; on ``CryptoError`` what was written is invalid
    (``decrypt_file`` writes to a temporary file for that reason). The audit log learns which check failed."""
    object_hash = hashlib.sha256(object_id.encode()).hexdigest()
    try:
        header = read_header(src)
    except CryptoError:
        keys.report_failure(
            context, "(unreadable header)", "malformed envelope header", {"object": object_hash}
        )
        raise
    binding = header.binding(object_id)
    # A failed unwrap (wrong object id, key version or tampered header) is audited by the key manager.
    try:
        aead = AESGCM(keys.unwrap(context, header.key_name, header.version, header.wrapped, binding))
    except KeyNotFound as error:  # a header naming no key we have: as opaque as any other failure
        keys.report_failure(
            context, "(unknown key)", "envelope names an unknown key", {"object": object_hash}
        )
        raise CryptoError from error
    try:
        _decrypt_chunks(aead, header, binding, src, dst, progress)
    except CryptoError as error:
        keys.report_failure(
            context,
            header.key_name,
            "envelope chunk failed authentication",
            {"object": object_hash, "chunk": error.extra.get("chunk"), "version": header.version},
        )
        raise CryptoError from error


def _decrypt_chunks(
    aead: AESGCM, header: Header, binding: bytes, src: BinaryIO, dst: BinaryIO, progress: Progress | None
) -> None:
    size = header.chunk_size + TAG
    buffers, output = (bytearray(size), bytearray(size)), bytearray(header.chunk_size)
    index, current, length = 0, 0, _readinto_full(src, buffers[0])
    while True:
        following = _readinto_full(src, buffers[1 - current]) if length == size else 0
        last = following == 0
        try:
            if index >= 2**32 or length < TAG:
                raise InvalidTag
            plain = memoryview(output)[: length - TAG]
            aead.decrypt_into(
                _nonce(header.nonce_prefix, index, last),
                memoryview(buffers[current])[:length],
                binding,
                plain,
            )
        except InvalidTag as error:
            failure = CryptoError()
            failure.extra["chunk"] = index  # for the audit record only; never rendered to the caller
            raise failure from error
        dst.write(plain)
        if progress:
            progress(length)
        if last:
            return
        index, current, length = index + 1, 1 - current, following


def encrypt_file(
    keys: KeyManager,
    context: Context,
    key_name: str,
    source: Path,
    target: Path,
    object_id: str = "",
    progress: Progress | None = None,
) -> None:
    # Unbuffered: chunks are read straight into our buffers (a buffered reader adds a copy per chunk).
    with source.open("rb", buffering=0) as src, _atomic_output(target) as dst:
        encrypt_stream(keys, context, key_name, object_id, src, dst, progress=progress)


def decrypt_file(
    keys: Unwrapper,
    context: Context,
    source: Path,
    target: Path,
    object_id: str = "",
    progress: Progress | None = None,
) -> None:
    with source.open("rb", buffering=0) as src, _atomic_output(target) as dst:
        decrypt_stream(keys, context, object_id, src, dst, progress=progress)


def rewrap_file(keys: KeyManager, context: Context, path: Path, object_id: str = "") -> int:
    """Re-wrap an object's data key under the key's primary version, in place: only the header is read and
    rewritten, whatever the object's size. Returns the new key version."""
    with path.open("r+b") as handle:
        header = read_header(handle)
        version, wrapped = keys.rewrap(
            context, header.key_name, header.version, header.wrapped, header.binding(object_id)
        )
        if len(wrapped) != len(header.wrapped):
            raise CryptoError  # a different wrapping size would move the data; not supported in place
        handle.seek(0)
        handle.write(
            Header(header.key_name, version, wrapped, header.nonce_prefix, header.chunk_size).encode()
        )
        handle.flush()
        os.fsync(handle.fileno())
    return version


class _atomic_output:  # noqa: N801 - used like open()
    """A temporary file beside ``target``, renamed over it only if the block succeeds."""

    def __init__(self, target: Path) -> None:
        self._target = target
        self._tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")

    def __enter__(self) -> BinaryIO:
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._handle = os.fdopen(fd, "wb")
        return self._handle

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
        if kind is None:
            os.replace(self._tmp, self._target)
        else:
            self._tmp.unlink(missing_ok=True)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _readinto_full(src: BinaryIO, buffer: bytearray) -> int:
    """Fill ``buffer``; fewer bytes only at end of stream. Returns how many were read."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = src.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def _read_full(src: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at end of stream (pipes may return short reads)."""
    data = src.read(size)
    while data and len(data) < size:
        more = src.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _read_exact(src: BinaryIO, size: int) -> bytes:
    data = _read_full(src, size)
    if len(data) != size:
        raise ValueError("truncated header")
    return data

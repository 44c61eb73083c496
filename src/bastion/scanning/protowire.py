"""Reading protocol-buffer messages by field number alone, without a schema or the protobuf runtime — for
ONNX models and TensorFlow SavedModels, which are protobufs. Linear in the input, bounded in depth; any
malformation raises ``WireError`` (the caller then treats the file as not that format, or as unsafe)."""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or oversized varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(buf: memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Every field of one message: (number, wire type, value or offset, length). For LEN fields the third
    item is the payload's offset in ``buf``; for the others it is the value and the length is 0."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if kind == VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, kind, value, 0
        elif kind == LEN:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise WireError("length beyond the message")
            yield number, kind, pos, length
            pos += length
        elif kind in (FIXED64, FIXED32):
            size = 8 if kind == FIXED64 else 4
            if pos + size > end:
                raise WireError("truncated fixed-width field")
            yield number, kind, int.from_bytes(buf[pos : pos + size], "little"), 0
            pos += size
        else:
            raise WireError(f"unsupported wire type {kind}")  # groups (3, 4) are not used by either format


def text(buf: memoryview, offset: int, length: int) -> str:
    try:
        return bytes(buf[offset : offset + length]).decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError("a string field is not UTF-8") from error

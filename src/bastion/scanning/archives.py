"""Reading zip archives the strict way: every central-directory entry must agree with its local header
(name, method, flags, sizes), entries must tile the file with no hidden bytes between them, CRCs must match,
names must stay inside the archive. Loaders disagree about what a malformed zip means (Python's zipfile
refuses an entry that torch's reader accepts), so any disagreement is itself a finding. Encrypted entries
cannot be scanned.
"""

from __future__ import annotations

import stat
import struct
import zlib
from typing import NamedTuple

from bastion.scanning.report import Finding, ScanReport, Severity
from bastion.scanning.streams import Window

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
ENCRYPTED = 0x0001 | 0x0040
_DATA_DESCRIPTOR = 0x0008
MAX_ENTRIES = 100_000
MAX_RATIO = 200  # uncompressed : compressed, for members over 1 MiB
MAX_TOTAL = 64 * 1024**3


class ZipProblem(Exception):
    """The archive is not one a strict reader accepts; the message says why."""


class Member(NamedTuple):
    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    mode: int


def _zip64_extra(extra: bytes, sizes: list[int]) -> list[int]:
    """Replace 0xFFFFFFFF fields (uncompressed, compressed, offset — in that order) from the zip64 extra."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        if tag == 0x0001:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, position + 4))
            for index, value in enumerate(sizes):
                if value == 0xFFFFFFFF and values:
                    sizes[index] = values.pop(0)
            return sizes
        position += 4 + length
    return sizes


def _directory(data: Window) -> tuple[int, int]:
    """(offset, entry count) of the central directory."""
    tail_start = max(0, len(data) - (65_536 + 22))
    tail = data.slice(tail_start, len(data)).bytes()
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        raise ZipProblem("no end-of-central-directory record")
    _, disk, _, _, count, _, offset, _ = struct.unpack_from("<IHHHHIIH", tail, at)
    if disk != 0:
        raise ZipProblem("multi-disk archives are not accepted")
    if (count == 0xFFFF or offset == 0xFFFFFFFF) and at >= 20 and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        (eocd64_offset,) = struct.unpack_from("<Q", tail, at - 20 + 8)
        record = data.slice(eocd64_offset, eocd64_offset + 56).bytes()
        if record[:4] != _EOCD64:
            raise ZipProblem("broken zip64 end record")
        count, offset = struct.unpack_from("<QQ", record, 32)[0], struct.unpack_from("<Q", record, 48)[0]
    if count > MAX_ENTRIES:
        raise ZipProblem("too many entries")
    return offset, count


def read_members(data: Window, report: ScanReport, location: str) -> list[Member]:
    """The archive's entries, checked. Raises ``ZipProblem`` for what cannot be read at all; records a finding
    for each disagreement or unsafe entry."""
    offset, count = _directory(data)
    members: list[Member] = []
    position = offset
    for _ in range(count):
        head = data.slice(position, position + 46).bytes()
        if len(head) < 46 or head[:4] != _CENTRAL:
            raise ZipProblem("central directory entry is broken")
        (
            _,
            _,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            _,
            _,
            attrs,
            header,
        ) = struct.unpack("<IHHHHHHIIIHHHHHII", head)
        name_bytes = data.slice(position + 46, position + 46 + name_len).bytes()
        extra = data.slice(position + 46 + name_len, position + 46 + name_len + extra_len).bytes()
        usize, csize, header = _zip64_extra(extra, [usize, csize, header])
        position += 46 + name_len + extra_len + comment_len
        name = name_bytes.decode("utf-8" if flags & 0x0800 else "cp437")
        members.append(
            _checked(
                data, report, location, name, name_bytes, flags, method, crc, csize, usize, header, attrs
            )
        )
    _check_tiling(data, report, location, members, offset)
    total = sum(m.size for m in members)
    if total > MAX_TOTAL:
        report.add(Finding("archive.bomb", Severity.HIGH, f"declares {total} bytes uncompressed", location))
    return members


def _checked(
    data: Window,
    report: ScanReport,
    location: str,
    name: str,
    name_bytes: bytes,
    flags: int,
    method: int,
    crc: int,
    csize: int,
    usize: int,
    header: int,
    attrs: int,
) -> Member:
    where = f"{location}!{name}"
    local = data.slice(header, header + 30).bytes()
    if len(local) < 30 or local[:4] != _LOCAL:
        raise ZipProblem(f"entry {name!r} points to no local header")
    (_, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, lname_len, lextra_len) = struct.unpack(
        "<IHHHHHIIIHH", local
    )
    lname = data.slice(header + 30, header + 30 + lname_len).bytes()
    if lname != name_bytes:
        report.add(Finding("archive.name-mismatch", Severity.HIGH, "local and central names differ", where))
    if lmethod != method or lflags != flags:
        report.add(
            Finding("archive.header-mismatch", Severity.HIGH, "local and central headers differ", where)
        )
    if (
        not flags & _DATA_DESCRIPTOR
        and (lcrc, lcsize, lusize)
        != (
            crc,
            csize & 0xFFFFFFFF,
            usize & 0xFFFFFFFF,
        )
        and not (lcsize == 0xFFFFFFFF or lusize == 0xFFFFFFFF)
    ):
        report.add(Finding("archive.size-mismatch", Severity.HIGH, "local and central sizes differ", where))
    if flags & ENCRYPTED:
        report.add(
            Finding("archive.encrypted", Severity.MEDIUM, "encrypted entries cannot be scanned", where)
        )
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\x00" in name:
        report.add(
            Finding("archive.path-traversal", Severity.HIGH, f"entry name {name!r} leaves the archive", where)
        )
    mode = attrs >> 16
    if stat.S_ISLNK(mode):
        report.add(
            Finding("archive.symlink", Severity.HIGH, "symbolic links are not accepted in archives", where)
        )
    if usize > 1024 * 1024 and csize > 0 and usize / csize > MAX_RATIO:
        report.add(Finding("archive.bomb", Severity.HIGH, f"compression ratio {usize // csize}:1", where))
    data_offset = header + 30 + lname_len + lextra_len
    return Member(name, method, flags, crc, csize, usize, header, data_offset, mode)


def _check_tiling(
    data: Window, report: ScanReport, location: str, members: list[Member], directory: int
) -> None:
    """Entries must follow one another from offset 0 to the central directory, overlapping nothing and hiding
    nothing between them (a data descriptor may follow an entry that says so)."""
    cursor = 0
    for member in sorted(members, key=lambda m: m.header_offset):
        gap = member.header_offset - cursor
        if gap < 0:
            report.add(
                Finding("archive.overlap", Severity.HIGH, "entries overlap", f"{location}!{member.name}")
            )
        elif gap > 0 and not (cursor > 0 and gap in (12, 16, 20, 24)):
            report.add(
                Finding("archive.hidden-bytes", Severity.HIGH, f"{gap} bytes outside any entry", location)
            )
        cursor = member.data_offset + member.compressed_size
    gap = directory - cursor
    if gap < 0 or (gap > 0 and gap not in (12, 16, 20, 24)):
        report.add(
            Finding(
                "archive.hidden-bytes",
                Severity.HIGH,
                "bytes between the last entry and the directory",
                location,
            )
        )


def contents(data: Window, member: Member, limit: int) -> Window:
    """The member's bytes (a window onto the file when stored), checked against its CRC."""
    raw = data.slice(member.data_offset, member.data_offset + member.compressed_size)
    if member.method == 0:
        body = raw
    elif member.method in (8, 12):
        if member.method == 8:
            out = zlib.decompressobj(-15).decompress(raw.view(), limit + 1)
        else:
            import bz2  # noqa: PLC0415 - rare in model archives

            out = bz2.BZ2Decompressor().decompress(raw.view(), limit + 1)
        if len(out) > limit:
            raise ZipProblem(f"entry {member.name!r} inflates beyond the scan limit")
        body = Window(out)
    else:
        raise ZipProblem(f"entry {member.name!r} uses compression method {member.method}")
    if zlib.crc32(body.view()) & 0xFFFFFFFF != member.crc:
        raise ZipProblem(f"entry {member.name!r} fails its CRC")
    return body

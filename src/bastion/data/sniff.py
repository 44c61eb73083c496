"""What an upload is, from its bytes (never its name): a data format we read, or something refused.

Refused in data uploads: executables (ELF, PE, Mach-O, scripts with ``#!``), pickles (binary, and protocol-0
text pickles that would pass for CSV), and any binary format we do not read. Zip archives are read strictly
by the artifact scanner's reader (traversal, bombs, headers that disagree, encryption) and must hold exactly
one data file, which is then judged the same way.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from io import BytesIO

_EXECUTABLE = (b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
               b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!")  # fmt: skip
PARQUET = b"PAR1"


@dataclass(frozen=True, slots=True)
class Verdict:
    format: str  # csv | json | jsonl | parquet | zip, or "refused"
    reason: str = ""  # why it was refused: a stable code
    detail: str = ""
    findings: list[str] = field(default_factory=list)


def sniff(head: bytes, tail: bytes, size: int, whole: bytes | None = None) -> Verdict:
    """``head``/``tail``: the first and last bytes; ``whole``: the content when small enough to check
    for a protocol-0 pickle (text that parses as a complete pickle)."""
    binary = _binary(head, tail, size)
    if binary is not None:
        return binary
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the sample
            return _BINARY
        text = head[: error.start].decode("utf-8")
    if any(ch in text for ch in "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f"):
        return _BINARY
    if whole is not None and _is_text_pickle(whole):
        return Verdict("refused", "data.pickle", "a protocol-0 pickle disguised as text")
    first = text.lstrip("\ufeff \t\r\n")[:1]
    return Verdict({"[": "json", "{": "jsonl"}.get(first, "csv"))


_BINARY = Verdict("refused", "data.binary", "binary content of a format data uploads do not accept")


def _binary(head: bytes, tail: bytes, size: int) -> Verdict | None:
    """The verdict on the binary formats we recognise by their magic bytes; None for anything else."""
    if size == 0:
        return Verdict("refused", "data.empty", "the file is empty")
    if head.startswith(_EXECUTABLE):
        return Verdict("refused", "data.executable", "an executable or script, not data")
    if head.startswith(PARQUET) and tail.endswith(PARQUET):
        return Verdict("parquet")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Verdict("zip")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return Verdict("refused", "data.pickle", "a pickle (code that runs when loaded), not data")
    return None


def _is_text_pickle(data: bytes) -> bool:
    """Text that pickletools reads as one complete pickle ending in STOP (opcodes only — nothing runs)."""
    if data[:1] not in b"(cdlI]}NSVFLtKJMpg0aesu.":
        return False
    try:
        for opcode, _, _ in pickletools.genops(BytesIO(data)):
            if opcode.name == "STOP":
                return True
    except Exception:  # noqa: BLE001 - any parse failure means: not a pickle
        return False
    return False

"""What a scan finds: findings with severity, location and the offending global, and one verdict."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class Severity(StrEnum):
    CRITICAL = "critical"  # code would run on load
    HIGH = "high"  # unsafe or ambiguous: a loader may run a payload
    MEDIUM = "medium"  # refused by default, allowed by an explicit policy (e.g. an unknown format)
    INFO = "info"


class Verdict(StrEnum):
    CLEAN = "clean"
    UNSAFE = "unsafe"
    UNSCANNABLE = "unscannable"  # encrypted, unknown format, too large: cannot be judged, so not accepted


class Finding(NamedTuple):
    code: str  # stable, e.g. "pickle.global.not-allowed"
    severity: Severity
    message: str
    location: str  # path, plus "!member" inside archives and "@offset" inside streams
    global_name: str | None = None  # "module.name" of the offending import, when there is one


class ScanReport:
    # A plain class, like the rest of the scanner: `bastion scan` starts a fresh process per artifact in
    # CI, so the scanner avoids imports (dataclasses, importlib.resources) that cost more than a small scan.
    __slots__ = ("findings", "format", "path", "scanned_bytes", "unscannable")

    def __init__(self, path: str, format: str = "unknown") -> None:
        self.path, self.format = path, format
        self.findings: list[Finding] = []
        self.unscannable = False
        self.scanned_bytes = 0

    @property
    def verdict(self) -> Verdict:
        if any(f.severity in (Severity.CRITICAL, Severity.HIGH) for f in self.findings):
            return Verdict.UNSAFE
        if self.unscannable or any(f.severity is Severity.MEDIUM for f in self.findings):
            return Verdict.UNSCANNABLE
        return Verdict.CLEAN

    def add(self, finding: Finding) -> None:
        if len(self.findings) < 1000:  # a hostile file cannot make the report unbounded
            self.findings.append(finding)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict.value,
            "scanned_bytes": self.scanned_bytes,
            "findings": [f._asdict() for f in self.findings],
        }

"""``bastion scan PATH...``: the artifact scanner on its own, for CI pipelines.

Imports only the scanner (no database, no server), so it starts fast. Exit codes: 0 every file clean, 10 an
unsafe file found, 11 nothing unsafe but something could not be scanned (refused by the registry too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from bastion.core.errors import BastionError, ExitCode, InvalidInput
from bastion.scanning import ScanReport, Verdict, scan_path
from bastion.scanning.allowlist import default_allowlist


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.exists():
            yield path
        else:
            raise InvalidInput(f"{path} does not exist.")


def execute(paths: list[Path], output_format: OutputFormat, output: Path | None) -> int:
    """Judge model artifacts without loading them: pickles (also inside PyTorch, joblib, numpy), archives,
    Keras, safetensors, GGUF. Anything not known to be safe is unsafe."""
    reports = [scan_path(path) for path in _files(paths)]
    if output_format is OutputFormat.TEXT:
        text = _text(reports)
    elif output_format is OutputFormat.JSON:
        document = {
            "allowlist_version": default_allowlist().version,
            "reports": [r.as_json() for r in reports],
        }
        text = json.dumps(document, indent=2)
    else:
        text = json.dumps(sarif(reports), indent=2)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
    verdicts = {r.verdict for r in reports}
    if Verdict.UNSAFE in verdicts:
        return int(ExitCode.FINDING)
    if Verdict.UNSCANNABLE in verdicts:
        return int(ExitCode.UNSCANNABLE)
    return int(ExitCode.OK)


def run(argv: list[str]) -> int:
    """``bastion scan ...`` with the standard library's argument parser: no CLI framework to import."""
    parser = argparse.ArgumentParser(prog="bastion scan", description=execute.__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories (scanned recursively)")
    parser.add_argument(
        "--format", choices=[f.value for f in OutputFormat], default="text", dest="output_format"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the report here instead of stdout")
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else int(ExitCode.USAGE)
    try:
        return execute(options.paths, OutputFormat(options.output_format), options.output)
    except BastionError as error:
        sys.stderr.write(f"error ({error.code}): {error.diagnostics()}\n")
        return int(error.exit_code)
    except OSError as error:
        sys.stderr.write(f"error (scan.io): {error.strerror}\n")
        return int(ExitCode.INVALID_INPUT)


def _text(reports: list[ScanReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{report.verdict.value.upper():12s} {report.path} ({report.format})")
        for finding in report.findings:
            culprit = f" [{finding.global_name}]" if finding.global_name else ""
            what = f"{finding.code}{culprit}: {finding.message}"
            lines.append(f"  {finding.severity.value:8s} {what} @ {finding.location}")
    counts = {v: sum(r.verdict is v for r in reports) for v in Verdict}
    lines.append(", ".join(f"{count} {verdict.value}" for verdict, count in counts.items()))
    return "\n".join(lines)


_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "info": "note"}


def sarif(reports: list[ScanReport]) -> dict[str, Any]:
    """SARIF 2.1.0, one result per finding, for code-scanning dashboards."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for report in reports:
        for finding in report.findings:
            rules.setdefault(finding.code, {"id": finding.code, "shortDescription": {"text": finding.code}})
            results.append(
                {
                    "ruleId": finding.code,
                    "level": _SARIF_LEVEL[finding.severity.value],
                    "message": {"text": finding.message},
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": Path(report.path).as_posix()}},
                            "logicalLocations": [{"fullyQualifiedName": finding.location}],
                        }
                    ],
                    "properties": {"severity": finding.severity.value, "global": finding.global_name},
                }
            )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "version": default_allowlist().version,
                        "informationUri": "https://github.com/bastion",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }

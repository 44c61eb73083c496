"""``bastion models verify``: checking a model against an OMS signature needs no state, so it runs without
the CLI framework or the rest of Bastion (like ``bastion scan``), in CI pipelines and on serving hosts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bastion.core.errors import BastionError, ExitCode, InvalidInput
from bastion.models.signing import Manifest, verify_model


def check(model: Path, signature: Path, key: Path) -> Manifest:
    try:
        document = json.loads(signature.read_text(encoding="utf-8"))
        public_pem = key.read_bytes()
    except (OSError, ValueError) as error:
        raise InvalidInput(f"Cannot read the signature or the key: {error}") from None
    return verify_model(model, document, public_pem)


def report(manifest: Manifest, json_output: bool) -> None:
    if json_output:
        document = {"verified": True, "files": len(manifest.resources), "root": manifest.root_digest}
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        sys.stdout.write(f"Verified: {len(manifest.resources)} files are exactly what was signed.\n")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bastion models verify", description=check.__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--json", action="store_true", dest="json_output")
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(ExitCode.OK) if exit_.code in (0, None) else int(ExitCode.USAGE)
    try:
        report(check(options.model, options.signature, options.key), options.json_output)
    except BastionError as error:
        sys.stderr.write(f"error ({error.code}): {error.diagnostics()}\n")
        return int(error.exit_code)
    return int(ExitCode.OK)

"""``bastion models sign|verify``: OpenSSF Model Signing (OMS) signatures, as model_signing makes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bastion.app.container import operator_context
from bastion.cli import registry_cmd, verify_cmd
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, out
from bastion.models.signing import sign_model

app = registry_cmd.app  # the registry's commands, plus sign and verify below
ModelPath = Annotated[Path, typer.Argument(help="The model: a directory or a single file.")]


@app.command("sign")
def sign(
    model: ModelPath,
    key: Annotated[str, typer.Option("--key", help="An ECDSA P-256 signing key in the key manager.")],
    signature: Annotated[Path, typer.Option("--signature", help="Where to write the signature.")] = Path(
        "model.sig"
    ),
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sign MODEL; `model_signing verify key --signature model.sig --public_key pub.pem MODEL` checks it
    (`bastion keys public-key NAME` prints the public key)."""
    with operator_session(settings_from(config)) as bastion:
        manifest, document = sign_model(bastion.keys, operator_context(), key, model)
    signature.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if json_output:
        emit_json(
            {"signature": str(signature), "files": len(manifest.resources), "root": manifest.root_digest}
        )
    else:
        out.print(f"Signed {len(manifest.resources)} files of {model} -> {signature}")


@app.command("verify")
def verify(
    model: ModelPath,
    signature: Annotated[Path, typer.Option("--signature", help="The OMS signature (Sigstore bundle).")],
    key: Annotated[Path, typer.Option("--key", help="The signer's public key, PEM.")],
    json_output: JsonOption = False,
) -> None:
    """Check MODEL against a signature made by Bastion or `model_signing sign key` (exit 10 if it fails)."""
    verify_cmd.report(verify_cmd.check(model, signature, key), json_output)

"""``bastion keys ...``: manage keys and encrypt or decrypt files, as the local operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, err, out, transfer_progress
from bastion.keys.envelope import decrypt_file, encrypt_file, rewrap_file
from bastion.keys.model import KeyAlgorithm, KeyInfo, KeyPurpose

app = typer.Typer(help="Manage keys; encrypt and decrypt files.", no_args_is_help=True)
NameArgument = Annotated[str, typer.Argument(help="Key name, e.g. datasets or models/signing.")]
ObjectIdOption = Annotated[str, typer.Option("--object-id", help="Binds the ciphertext to this object.")]


def _json(info: KeyInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "purpose": info.purpose,
        "algorithm": info.algorithm,
        "backend": info.backend,
        "state": info.state,
        "primary_version": info.primary_version,
        "created_at": info.created_at.isoformat(),
        "rotated_at": info.rotated_at.isoformat(),
        "max_age_days": info.max_age_days,
        "versions": [
            {"version": v.version, "state": v.state, "created_at": v.created_at.isoformat()}
            for v in info.versions
        ],
    }


def _show(infos: list[KeyInfo], json: bool) -> None:
    if json:
        emit_json([_json(info) for info in infos])
        return
    table = Table("name", "purpose", "algorithm", "backend", "state", "primary", "versions", box=None)
    for info in infos:
        table.add_row(
            info.name,
            info.purpose,
            info.algorithm,
            info.backend,
            info.state,
            str(info.primary_version),
            str(len(info.versions)),
        )
    out.print(table)


@app.command("create")
def create(
    name: NameArgument,
    purpose: Annotated[KeyPurpose, typer.Option(case_sensitive=False)] = KeyPurpose.ENCRYPT,
    algorithm: Annotated[KeyAlgorithm | None, typer.Option(case_sensitive=False)] = None,
    max_age_days: Annotated[int | None, typer.Option("--max-age-days", min=1)] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Create a key (material generated inside the configured backend)."""
    with operator_session(settings_from(config)) as bastion:
        _show([bastion.keys.create(operator_context(), name, purpose, algorithm, max_age_days)], json)


@app.command("list")
def list_keys(config: ConfigOption = None, json: JsonOption = False) -> None:
    """List keys and their state."""
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.keys.list_keys(operator_context()), json)


@app.command("rotate")
def rotate(name: NameArgument, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Add a new primary version; older versions keep decrypting and verifying."""
    with operator_session(settings_from(config)) as bastion:
        _show([bastion.keys.rotate(operator_context(), name)], json)


@app.command("due")
def due(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Keys past their maximum age (exit 10 if any)."""
    with operator_session(settings_from(config)) as bastion:
        overdue = bastion.keys.due_for_rotation(operator_context())
    _show(overdue, json)
    if overdue:
        raise typer.Exit(10)


@app.command("disable")
def disable(name: NameArgument, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Refuse every use of the key until it is enabled again."""
    with operator_session(settings_from(config)) as bastion:
        _show([bastion.keys.disable(operator_context(), name)], json)


@app.command("enable")
def enable(name: NameArgument, config: ConfigOption = None, json: JsonOption = False) -> None:
    with operator_session(settings_from(config)) as bastion:
        _show([bastion.keys.enable(operator_context(), name)], json)


@app.command("destroy")
def destroy(
    name: NameArgument,
    version: Annotated[
        int | None, typer.Option(min=1, help="Only this version (default: every version).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: data under it becomes unrecoverable.")] = False,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Erase key material (crypto-shredding). Irreversible."""
    if not yes:
        err.print("Refusing without --yes: everything encrypted under it becomes unrecoverable.")
        raise typer.Exit(2)
    with operator_session(settings_from(config)) as bastion:
        _show([bastion.keys.destroy(operator_context(), name, version)], json)


@app.command("encrypt")
def encrypt(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    target: Annotated[Path, typer.Argument(dir_okay=False)],
    key: Annotated[str, typer.Option("--key", help="Key-encryption key name.")],
    object_id: ObjectIdOption = "",
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Encrypt a file (streaming AES-256-GCM under a fresh data key wrapped by KEY)."""
    with (
        operator_session(settings_from(config)) as bastion,
        transfer_progress("encrypting", source) as advance,
    ):
        encrypt_file(bastion.keys, operator_context(), key, source, target, object_id, progress=advance)
    if json:
        emit_json({"source": str(source), "target": str(target), "key": key})


@app.command("decrypt")
def decrypt(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    target: Annotated[Path, typer.Argument(dir_okay=False)],
    object_id: ObjectIdOption = "",
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Decrypt a file; nothing is written unless every chunk authenticates."""
    with (
        operator_session(settings_from(config)) as bastion,
        transfer_progress("decrypting", source) as advance,
    ):
        decrypt_file(bastion.keys, operator_context(), source, target, object_id, progress=advance)
    if json:
        emit_json({"source": str(source), "target": str(target)})


@app.command("rewrap")
def rewrap(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    object_id: ObjectIdOption = "",
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Re-wrap an encrypted file's data key under the primary key version, in place (header only)."""
    with operator_session(settings_from(config)) as bastion:
        version = rewrap_file(bastion.keys, operator_context(), path, object_id)
    if json:
        emit_json({"path": str(path), "version": version})
    else:
        out.print(f"{path}: now under version {version}")


@app.command("public-key")
def public_key(
    name: Annotated[str, typer.Argument()],
    version: Annotated[int | None, typer.Option("--version", min=1)] = None,
    config: ConfigOption = None,
) -> None:
    """Print a signing key's public key (PEM), e.g. for `model_signing verify key --public_key`."""
    with operator_session(settings_from(config)) as bastion:
        pem = bastion.keys.public_key_pem(operator_context(), name, version)
    out.print(pem.decode(), markup=False, end="")

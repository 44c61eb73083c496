"""``bastion secrets ...``: the secrets store, and runtime injection into a child process.

Values are read from standard input or a file, never from the command line (argv is visible to every user
through ``ps``), and printed only with an explicit ``--reveal``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.table import Table

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, err, out
from bastion.core.errors import InvalidInput
from bastion.core.settings import ENV_PREFIX

app = typer.Typer(help="Store secrets and inject them at run time.", no_args_is_help=True)
NameArgument = Annotated[str, typer.Argument(help="Secret name, e.g. providers/openai.")]
# Settings that unlock Bastion itself never reach a child process.
_WITHHELD = ("MASTER_KEY", "MASTER_PASSPHRASE", "PKCS11_PIN", "DATABASE_URL")


@app.command("put")
def put(
    name: NameArgument,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file", exists=True, dir_okay=False, help="Read the value from this file instead of stdin."
        ),
    ] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Store a new version of a secret, read from stdin (or --from-file)."""
    raw = from_file.read_text() if from_file else sys.stdin.read()
    value = raw[:-1] if raw.endswith("\n") else raw
    with operator_session(settings_from(config)) as bastion:
        info = bastion.secrets.put(operator_context(), name, SecretStr(value))
    if json:
        emit_json({"name": info.name, "version": info.current_version})
    else:
        out.print(f"Stored {info.name} version {info.current_version}.")


@app.command("get")
def get(
    name: NameArgument,
    version: Annotated[int | None, typer.Option(min=1)] = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the value itself.")] = False,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Show a secret's version; the value only with --reveal."""
    with operator_session(settings_from(config)) as bastion:
        secret = bastion.secrets.get(operator_context(), name, version)
    value = secret.value.get_secret_value() if reveal else "**********"
    if json:
        emit_json({"name": secret.name, "version": secret.version, "value": value})
    else:
        out.print(value, markup=False)


@app.command("list")
def list_secrets(config: ConfigOption = None, json: JsonOption = False) -> None:
    """List secrets (names and versions, never values)."""
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.secrets.list_secrets(operator_context())
    if json:
        emit_json(
            [
                {
                    "name": i.name,
                    "current_version": i.current_version,
                    "versions": i.versions,
                    "updated_at": i.updated_at.isoformat(),
                }
                for i in infos
            ]
        )
        return
    table = Table("name", "current", "versions", "updated", box=None)
    for info in infos:
        table.add_row(info.name, str(info.current_version), str(info.versions), info.updated_at.isoformat())
    out.print(table)


@app.command("delete")
def delete(
    name: NameArgument, yes: Annotated[bool, typer.Option("--yes")] = False, config: ConfigOption = None
) -> None:
    """Crypto-shred every version of a secret."""
    if not yes:
        err.print("Refusing without --yes: every version becomes unrecoverable.")
        raise typer.Exit(2)
    with operator_session(settings_from(config)) as bastion:
        bastion.secrets.delete(operator_context(), name)


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        variable, _, secret = pair.partition("=")
        if not variable.isidentifier() or not secret:
            raise InvalidInput(f"--env takes NAME=secret/path, got '{pair}'.")
        mapping[variable] = secret
    return mapping


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_command(
    ctx: typer.Context,
    env: Annotated[list[str], typer.Option("--env", help="NAME=secret/path; repeatable.")],
    config: ConfigOption = None,
) -> None:
    """Run a command with secrets in its environment: nothing is written to disk, and Bastion's own
    unlocking settings (master key, PIN, database URL) are withheld from it. Exits with the command's code."""
    command = list(ctx.args)
    if not command:
        raise InvalidInput("Give the command after --, e.g. bastion secrets exec --env K=name -- app.")
    mapping = _mapping(env)
    with operator_session(settings_from(config)) as bastion:
        values = {
            variable: bastion.secrets.get(operator_context(), secret).value
            for variable, secret in mapping.items()
        }
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {ENV_PREFIX + name for name in _WITHHELD}
    }
    child_env.update({variable: value.get_secret_value() for variable, value in values.items()})
    try:
        result = subprocess.run(command, env=child_env, check=False)  # noqa: S603 - the operator's own command
    except FileNotFoundError as error:
        raise InvalidInput(f"Command not found: {command[0]}.") from error
    raise typer.Exit(result.returncode)

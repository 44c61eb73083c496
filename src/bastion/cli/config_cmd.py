"""``bastion config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bastion.cli.common import ConfigOption, JsonOption, settings_from
from bastion.cli.output import emit_json, err, out
from bastion.core.config_check import check_config_file
from bastion.core.errors import ExitCode
from bastion.core.settings import DEFAULT_CONFIG_FILE, display_settings

app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@app.command("show")
def show(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Print the effective settings (environment > file > defaults) with secrets masked."""
    shown = display_settings(settings_from(config))
    if json:
        emit_json(shown)
        return
    table = Table("setting", "value", box=None)
    for key, value in shown.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)


@app.command("check")
def check(
    path: Annotated[
        Path | None, typer.Argument(help="TOML file (default: --config, or ./bastion.toml).")
    ] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Refuse a configuration file holding plaintext secrets (exit 10); names keys, never values."""
    target = path or config or DEFAULT_CONFIG_FILE
    findings = check_config_file(target)
    if json:
        emit_json({"file": str(target), "findings": [{"key": f.key, "rule": f.rule} for f in findings]})
    elif findings:
        err.print(
            f"[bold red]{target} holds plaintext secrets[/] - move them to BASTION_* variables or "
            "'bastion secrets put':"
        )
        for finding in findings:
            err.print(f"  - {escape(finding.key)}: {finding.rule}")
    else:
        out.print(f"{target}: no plaintext secrets found.")
    if findings:
        raise typer.Exit(int(ExitCode.FINDING))

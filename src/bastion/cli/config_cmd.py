"""``bastion config show``."""

from __future__ import annotations

import typer
from rich.table import Table

from bastion.cli.common import ConfigOption, JsonOption, settings_from
from bastion.cli.output import emit_json, out
from bastion.core.settings import display_settings

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

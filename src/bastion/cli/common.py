"""Options every command shares, and the one way a command gets its settings and a built system."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.app import Bastion, build
from bastion.cli.output import JSON_OPTION_HELP, use_json
from bastion.core.errors import ConfigError
from bastion.core.logs import configure_logging
from bastion.core.settings import CONFIG_ENV, Settings, load_settings
from bastion.store import current_revision, head_revision


def _json_flag(value: bool) -> bool:
    raw = os.environ.get("BASTION_JSON")
    if raw is not None and raw.strip().lower() not in ("true", "false", "1", "0"):
        raise ConfigError("BASTION_JSON must be true or false (or 1 or 0).")
    enabled = value or (raw is not None and raw.strip().lower() in ("true", "1"))
    use_json(enabled)
    return enabled


JsonOption = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP, callback=_json_flag)]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="TOML settings file (default: ./bastion.toml).",
        dir_okay=False,
    ),
]


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    settings = load_settings(config, overrides=overrides)
    configure_logging(settings.log_level.value, settings.log_format)
    return settings


@contextmanager
def operator_session(settings: Settings) -> Iterator[Bastion]:
    """The system built for the local operator (whose permissions are the shipped ``default:local-operator``
    policy)."""
    bastion = build(settings)
    try:
        if current_revision(bastion.database) != head_revision():
            raise ConfigError(
                f"The state in {settings.state_dir} is not initialised or not migrated.",
                remedy="Run 'bastion init' first.",
            )
        yield bastion
    finally:
        bastion.close()

"""``bastion backup create`` and ``bastion backup restore`` (embedded SQLite state, local key backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, out
from bastion.core.errors import ConfigError
from bastion.core.settings import KeyBackendKind, Settings
from bastion.keys.backup import create_backup, restore_backup
from bastion.keys.local import MasterKeySource
from bastion.spine import Resource
from bastion.store import current_revision

app = typer.Typer(help="Encrypted backups of the embedded state.", no_args_is_help=True)


def _embedded(settings: Settings) -> Path:
    if settings.database_url is not None or settings.keys_backend is not KeyBackendKind.LOCAL:
        raise ConfigError(
            "Backups cover the embedded deployment (SQLite, local key backend).",
            remedy="Back up PostgreSQL with pg_dump and the HSM with its own tools.",
        )
    return settings.state_dir / "bastion.db"


@app.command("create")
def create(
    target: Annotated[Path, typer.Argument(dir_okay=False, help="New file to write the backup to.")],
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Write an encrypted backup of the state (keep the master key apart from it)."""
    settings = settings_from(config)
    database_file = _embedded(settings)
    with operator_session(settings) as bastion:
        report = create_backup(
            bastion.uow,
            bastion.keys,
            bastion.clock,
            operator_context(),
            state_dir=settings.state_dir,
            database_file=database_file,
            schema_revision=current_revision(bastion.database) or "",
            target=target,
        )
    if json:
        emit_json(
            {
                "path": str(report.path),
                "created_at": report.created_at.isoformat(),
                "schema": report.schema_revision,
                "files": list(report.files),
            }
        )
    else:
        out.print(
            f"Backup written to {report.path} ({len(report.files)} files, schema {report.schema_revision})."
        )


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Restore a backup into an empty state directory (BASTION_STATE_DIR), with the same master key."""
    settings = settings_from(config)
    _embedded(settings)
    key_file = settings.effective_master_key_file
    if settings.master_key is None and settings.master_passphrase is None and not key_file.exists():
        raise ConfigError(
            "Restoring needs the master key that sealed the backup's keyring.",
            remedy="Set BASTION_MASTER_KEY, or put the master key file in place first.",
        )
    master = MasterKeySource(
        key=settings.master_key, passphrase=settings.master_passphrase, key_file=key_file
    )
    restored = restore_backup(source, settings.state_dir, master, operator_context())
    # The restored log records its own restoration (and opening it checks the schema is whole).
    with (
        operator_session(settings) as bastion,
        bastion.uow.act(
            operator_context(), "backup.restore", Resource("state", "main"), details={"source": source.name}
        ),
    ):
        pass
    if json:
        emit_json({"state_dir": str(settings.state_dir), "files": restored})
    else:
        out.print(f"Restored {len(restored)} files into {settings.state_dir}.")

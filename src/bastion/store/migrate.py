"""Run Alembic migrations programmatically (``bastion init`` and the test fixtures use this)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bastion.store.database import Database

SCRIPT_LOCATION = "bastion.store:migrations"


def _config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = database.engine
    return config


def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    command.upgrade(_config(database), revision)


def downgrade(database: Database, revision: str) -> None:
    """Step the schema back to ``revision`` ('base' removes everything). Destroys data: for operators only."""
    command.downgrade(_config(database), revision)


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")  # packaging error, not a user error
    return str(head)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

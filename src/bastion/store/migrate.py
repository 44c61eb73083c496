"""Run Alembic migrations programmatically (``bastion init`` and the test fixtures use this).

Alembic is imported only to migrate: every CLI command checks that the schema is current, and that check
reads the version table and the migration files directly rather than pay Alembic's import (about a second
on a small machine) each time.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from bastion.store.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "bastion.store:migrations"
VERSIONS = Path(__file__).with_name("migrations") / "versions"
_REVISION = re.compile(r'^revision = "([^"]+)"$', re.M)
_DOWN = re.compile(r'^down_revision = (?:"([^"]+)"|None)$', re.M)


def _config(database: Database) -> Config:
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = database.engine
    return config


def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    from alembic import command  # noqa: PLC0415

    command.upgrade(_config(database), revision)


def downgrade(database: Database, revision: str) -> None:
    """Step the schema back to ``revision`` ('base' removes everything). Destroys data: for operators only."""
    from alembic import command  # noqa: PLC0415

    command.downgrade(_config(database), revision)


@cache
def head_revision() -> str:
    """The one revision no other migration revises (the chain is linear; a test holds Alembic to it)."""
    revisions, parents = set(), set()
    for path in VERSIONS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found, down = _REVISION.search(source), _DOWN.search(source)
        if found is None or down is None:
            raise RuntimeError(f"{path.name} is not a migration")  # packaging error, not a user error
        revisions.add(found.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads")
    return heads.pop()


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

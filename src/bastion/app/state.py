"""Creating and upgrading the state directory: ``bastion init`` and the first step of ``bastion up``."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bastion.core.clock import Clock, SystemClock
from bastion.core.errors import ConfigError
from bastion.core.settings import Settings, mask_url
from bastion.keys import LocalCA
from bastion.store import Database, current_revision, migrate


@dataclass(frozen=True, slots=True)
class InitReport:
    state_dir: Path
    database: str
    schema_revision: str
    ca_cert: Path


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory 0700, or refuse one that others can read or write."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        if path.stat().st_uid != os.getuid():
            raise ConfigError(
                f"The state directory {path} is accessible to other users and not owned by you.",
                remedy=f"chmod 700 {path} as its owner.",
            )
        path.chmod(0o700)
    return path


def _restrict_sqlite_files(database: Database) -> None:
    """The embedded database holds the audit log and (later) sealed keys: owner-only, like the directory."""
    if database.dialect != "sqlite" or not database.url.database:
        return
    base = Path(database.url.database)
    for path in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")):
        if path.exists():
            path.chmod(0o600)


def tls_dir(settings: Settings) -> Path:
    return settings.state_dir / "tls"


def init_state(settings: Settings, clock: Clock | None = None) -> InitReport:
    """Idempotent: create what is missing, migrate the schema to head, keep everything that exists."""
    state_dir = ensure_state_dir(settings.state_dir)
    database = Database(settings.effective_database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    try:
        migrate(database)
        revision = current_revision(database) or ""
    finally:
        database.dispose()
    _restrict_sqlite_files(database)
    ca = LocalCA(tls_dir(settings), clock or SystemClock())
    ca.ensure_server_files(settings.host)
    return InitReport(
        state_dir=state_dir.resolve(),
        database=mask_url(settings.effective_database_url),
        schema_revision=revision,
        ca_cert=ca.ca_cert_path.resolve(),
    )

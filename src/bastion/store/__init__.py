"""Base layer: the relational store (SQLAlchemy models, Alembic migrations) shared by every subsystem.

Stable API: ``Database``, ``migrate``, ``current_revision``, ``head_revision`` and the tables in ``tables``.
"""

from bastion.store.database import Database
from bastion.store.migrate import current_revision, head_revision, migrate

__all__ = ["Database", "current_revision", "head_revision", "migrate"]

"""Key metadata: keys and their versions (material stays in the key backend).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keys",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("primary_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_age_days", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_keys"),
    )
    op.create_table(
        "key_versions",
        sa.Column("key_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("backend_ref", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("field_keys_wrapped", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["key_name"], ["keys.name"], name="fk_key_versions_key_name_keys"),
        sa.PrimaryKeyConstraint("key_name", "version", name="pk_key_versions"),
    )


def downgrade() -> None:
    op.drop_table("key_versions")
    op.drop_table("keys")

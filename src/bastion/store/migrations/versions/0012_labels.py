"""Labels: versioned label records with their labeller (labelling integrity).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("item", sa.String(256), nullable=False),
        sa.Column("labeller", sa.String(255), nullable=False),
        sa.Column("label", sa.String(256), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
    )
    op.create_index("ix_labels_dataset_item", "labels", ["dataset_name", "item"])


def downgrade() -> None:
    op.drop_table("labels")

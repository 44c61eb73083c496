"""Data protection II: privacy-budget spends, exports (for lineage), data-subject requests, model reviews.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_spends",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("consumer", sa.String(255), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_spends"),
    )
    op.create_index("ix_privacy_spends_dataset_consumer", "privacy_spends", ["dataset_name", "consumer"])
    op.create_table(
        "dataset_exports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_exports"),
    )
    op.create_index("ix_dataset_exports_sha256", "dataset_exports", ["sha256"])
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_sealed", sa.Text(), nullable=True),
        sa.Column("subject_digest", sa.String(64), nullable=False),
        sa.Column("changes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subject_requests"),
    )
    op.create_table(
        "model_reviews",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_reviews"),
    )
    op.create_index("ix_model_reviews_version_id", "model_reviews", ["version_id"])


def downgrade() -> None:
    op.drop_table("model_reviews")
    op.drop_table("subject_requests")
    op.drop_table("dataset_exports")
    op.drop_table("privacy_spends")

"""Datasets: datasets, content-addressed versions, quarantined uploads, pseudonym look-ups.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("name", name="pk_datasets"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_name", sa.String(160), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        _when("created_at"),
        _when("shredded_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_name"], ["datasets.name"], name="fk_dataset_versions_dataset_name_datasets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_versions"),
    )
    op.create_index(
        "ix_dataset_versions_dataset_version", "dataset_versions", ["dataset_name", "version"], unique=True
    )
    op.create_index("ix_dataset_versions_sha256", "dataset_versions", ["sha256"])
    op.create_table(
        "dataset_quarantine",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_quarantine"),
    )
    op.create_index("ix_dataset_quarantine_dataset_name", "dataset_quarantine", ["dataset_name"])
    op.create_table(
        "pseudonyms",
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("value_encrypted", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_name", "field", "token", name="pk_pseudonyms"),
    )


def downgrade() -> None:
    for table in ("pseudonyms", "dataset_quarantine", "dataset_versions", "datasets"):
        op.drop_table(table)

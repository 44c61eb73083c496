"""The model registry: models, gates, versions, stage history, approvals.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
    )
    op.create_table(
        "model_gates",
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("scope", name="pk_model_gates"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("scan_verdict", sa.String(16), nullable=False),
        sa.Column("scan_report", sa.JSON(), nullable=False),
        sa.Column("scan_accepted_by", sa.String(255), nullable=True),
        sa.Column("key_name", sa.String(128), nullable=True),
        sa.Column("signature", sa.JSON(), nullable=True),
        sa.Column("signing_key_version", sa.Integer(), nullable=True),
        sa.Column("provenance", sa.JSON(), nullable=True),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.Column("gate_result", sa.JSON(), nullable=True),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("vetted_by", sa.String(255), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        _when("created_at"),
        _when("shredded_at", nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"], name="fk_model_versions_model_name_models"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
    )
    op.create_index(
        "ix_model_versions_model_version", "model_versions", ["model_name", "version"], unique=True
    )
    op.create_table(
        "model_stage_events",
        sa.Column("id", _SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        _when("at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_model_stage_events_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_stage_events"),
    )
    op.create_index("ix_model_stage_events_version_id", "model_stage_events", ["version_id"])
    op.create_table(
        "model_approvals",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("approver_id", sa.String(255), nullable=False),
        _when("at"),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_model_approvals_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("version_id", "approver_id", name="pk_model_approvals"),
    )


def downgrade() -> None:
    for table in ("model_approvals", "model_stage_events", "model_versions", "model_gates", "models"):
        op.drop_table(table)

"""Cedar authorization: role bindings, groups, versioned custom policies, elevations, break-glass keys.

The per-action grants of 0004 become the first custom policy version (one ``permit`` per grant), so an
upgrade keeps every permission that was given — and nothing more.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copy of the mapping at the time of this migration (the catalog may grow later).
_ENTITY_TYPES = {
    "audit_log": "AuditLog",
    "key": "Key",
    "secret": "Secret",
    "state": "State",
    "principal": "Account",
    "api_key": "ApiKey",
    "token": "Token",
}


def _policy_for(grant: sa.Row[Any]) -> str | None:
    grant_id, principal_id, action, resource_type, resource_id = tuple(grant)
    entity = _ENTITY_TYPES.get(resource_type)
    if entity is None or not principal_id.startswith(("user:", "service:")):
        return None
    principal_type = "User" if principal_id.startswith("user:") else "Service"
    resource = f"resource is Bastion::{entity}"
    if resource_id is not None:
        resource = f"resource == Bastion::{entity}::{json.dumps(resource_id)}"
    return (
        f"@id({json.dumps(grant_id)})\n"
        f"permit(principal == Bastion::{principal_type}::{json.dumps(principal_id)}, "
        f"action == Bastion::Action::{json.dumps(action)}, {resource});\n"
    )


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("break_glass", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_role_bindings_principal_id_principals"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_role_bindings"),
    )
    op.create_index("ix_role_bindings_principal_id", "role_bindings", ["principal_id"])
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(255), nullable=False),
        sa.Column("member_id", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["principals.id"], name="fk_group_members_group_id_principals"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["principals.id"], name="fk_group_members_member_id_principals"
        ),
        sa.PrimaryKeyConstraint("group_id", "member_id", name="pk_group_members"),
    )
    op.create_index("ix_group_members_member_id", "group_members", ["member_id"])
    versions = op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_policy_versions"),
    )
    head = op.create_table(
        "policy_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_head"),
    )
    op.create_table(
        "elevations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["principals.id"], name="fk_elevations_requester_id_principals"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_elevations"),
    )
    op.create_index("ix_elevations_requester_id", "elevations", ["requester_id"])

    now = datetime.now(UTC)
    grants = op.get_bind().execute(
        sa.text("SELECT id, principal_id, action, resource_type, resource_id FROM grants ORDER BY id")
    )
    text = "".join(policy for grant in grants if (policy := _policy_for(grant)) is not None)
    version = 0
    if text:
        version = 1
        op.bulk_insert(
            versions,
            [
                {
                    "version": 1,
                    "text": text,
                    "sha256": hashlib.sha256(text.encode()).hexdigest(),
                    "comment": "grants carried over from before the Cedar engine",
                    "created_at": now,
                    "created_by": "migration:0006",
                }
            ],
        )
    op.bulk_insert(head, [{"id": 1, "version": version, "changed_at": now}])
    op.drop_table("grants")


def downgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_grants_principal_id_principals"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
    )
    op.drop_table("elevations")
    op.drop_table("policy_head")
    op.drop_table("policy_versions")
    op.drop_table("group_members")
    op.drop_table("role_bindings")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("break_glass")

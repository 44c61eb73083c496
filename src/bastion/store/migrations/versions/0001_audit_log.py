"""The tamper-evident audit log: events as Merkle leaves, subtree hashes, head, checkpoints, export cursors.

Database triggers make the log append-only as a second barrier behind the code (verification is the
first, and catches anyone who can drop triggers): events cannot be updated, and deleted only below the
recorded prune point; nodes and checkpoints cannot be changed at all; the head cannot move backwards.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HASH = sa.LargeBinary(32)
_FROZEN = ("audit_tree_nodes", "audit_checkpoints")

_SQLITE_GUARDS = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END""",
    """CREATE TRIGGER audit_events_prune_only BEFORE DELETE ON audit_events
       WHEN OLD.seq >= (SELECT pruned_below FROM audit_head WHERE id = 1)
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END""",
    """CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
       WHEN NEW.size < OLD.size OR NEW.pruned_below < OLD.pruned_below OR NEW.origin != OLD.origin
       BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       BEGIN SELECT RAISE(ABORT, 'audit_head is append-only'); END""",
    *(
        f"""CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
        for table in _FROZEN
        for verb in ("update", "delete")
    ),
]

_POSTGRES_GUARDS = [
    """CREATE FUNCTION bastion_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$""",
    """CREATE FUNCTION bastion_audit_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF OLD.seq >= (SELECT pruned_below FROM audit_head WHERE id = 1) THEN
           RAISE EXCEPTION 'audit_events is append-only';
         END IF;
         RETURN OLD;
       END $$""",
    """CREATE FUNCTION bastion_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.size < OLD.size OR NEW.pruned_below < OLD.pruned_below OR NEW.origin <> OLD.origin THEN
           RAISE EXCEPTION 'audit_head only moves forward';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION bastion_audit_append_only()""",
    """CREATE TRIGGER audit_events_prune_only BEFORE DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION bastion_audit_prune_only()""",
    """CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION bastion_audit_head_forward()""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION bastion_audit_append_only()""",
    *(
        f"""CREATE TRIGGER {table}_frozen BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION bastion_audit_append_only()"""
        for table in _FROZEN
    ),
    *(
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION bastion_audit_append_only()"""
        for table in ("audit_events", "audit_head", *_FROZEN)
    ),
]


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", _BIGINT, nullable=False, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("actor_type", sa.String(32), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_ids", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("source_address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.Column("data_categories", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("leaf_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
        sa.CheckConstraint("outcome IN ('allowed', 'denied', 'error')", name="ck_audit_events_outcome"),
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"])
    op.create_index("ix_audit_events_actor_id", "audit_events", ["actor_id"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_resource", "audit_events", ["resource_type", "resource_id"])
    op.create_table(
        "audit_tree_nodes",
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", _BIGINT, nullable=False),
        sa.Column("hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_tree_nodes"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("size", _BIGINT, nullable=False),
        sa.Column("root_hash", _HASH, nullable=False),
        sa.Column("pruned_below", _BIGINT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", _BIGINT, nullable=False, autoincrement=False),
        sa.Column("root_hash", _HASH, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_export_cursors",
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("next_seq", _BIGINT, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", name="pk_audit_export_cursors"),
    )
    # Each log gets its own origin, the name its checkpoints are signed under (C2SP tlog-checkpoint).
    empty_root = bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )  # SHA-256("")
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "origin": f"bastion.local/audit/{secrets.token_hex(8)}",
                "size": 0,
                "root_hash": empty_root,
                "pruned_below": 0,
            }
        ],
    )
    guards = _POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "audit_export_cursors",
        "audit_checkpoints",
        "audit_head",
        "audit_tree_nodes",
        "audit_events",
    ):
        op.execute(f"DROP TABLE {table}")
    if op.get_bind().dialect.name == "postgresql":
        for function in (
            "bastion_audit_append_only",
            "bastion_audit_prune_only",
            "bastion_audit_head_forward",
        ):
            op.execute(f"DROP FUNCTION {function}()")

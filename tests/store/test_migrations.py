"""The same migrations on SQLite and PostgreSQL: they apply, match the models, and are reversible."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, exc, insert, text, update

from bastion.policy import compile_policies
from bastion.store import Database, current_revision, head_revision, migrate
from bastion.store.migrate import downgrade
from bastion.store.tables import AuditEvent, Base, PolicyHead, PolicyVersion


def test_migrate_brings_schema_to_head_and_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert current_revision(db) is None
        migrate(db)
        migrate(db)
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_back(database: Database) -> None:
    downgrade(database, "base")
    assert current_revision(database) is None
    migrate(database)
    assert current_revision(database) == head_revision()


def _event_values() -> dict[str, object]:
    return {
        "seq": 0,
        "leaf_hash": b"\x00" * 32,
        "event_id": "00000000-0000-7000-8000-000000000001",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC),
        "actor_id": "a",
        "actor_type": "user",
        "auth_method": "test",
        "action": "x.y",
        "resource_type": "r",
        "resource_id": "1",
        "outcome": "allowed",
        "reason": "",
        "policy_ids": [],
        "request_id": "r1",
        "data_categories": [],
        "details": {},
    }


@pytest.mark.parametrize("tamper", ["update", "delete"])
def test_audit_table_is_append_only_in_the_database(database: Database, tamper: str) -> None:
    with database.transaction() as session:
        session.execute(insert(AuditEvent).values(**_event_values()))
    statement = update(AuditEvent).values(outcome="denied") if tamper == "update" else delete(AuditEvent)
    with pytest.raises(exc.DatabaseError, match="append-only"), database.transaction() as session:
        session.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_head SET size = size - 1",
        "UPDATE audit_head SET origin = 'forged'",
        "DELETE FROM audit_head",
        "UPDATE audit_tree_nodes SET hash = hash",
        "DELETE FROM audit_tree_nodes",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_tree_state_cannot_be_rewritten(database: Database, statement: str) -> None:
    with database.transaction() as session:
        session.execute(
            text("INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (1, 0, :h)"), {"h": b"\x01" * 32}
        )
        session.execute(
            text(
                "INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) "
                "VALUES (2, :h, 'n', CURRENT_TIMESTAMP)"
            ),
            {"h": b"\x01" * 32},
        )
        session.execute(text("UPDATE audit_head SET size = 2"))
    with (
        pytest.raises(exc.DatabaseError, match=r"append-only|only moves forward"),
        database.transaction() as session,
    ):
        session.execute(text(statement))


def test_events_below_the_prune_point_may_be_deleted(database: Database) -> None:
    with database.transaction() as session:
        session.execute(insert(AuditEvent).values(**_event_values()))
        session.execute(text("UPDATE audit_head SET size = 1, pruned_below = 1"))
    with database.transaction() as session:
        assert session.execute(delete(AuditEvent)).rowcount == 1


@pytest.mark.postgres
def test_audit_table_refuses_truncate_on_postgres(postgres_url: str) -> None:
    database = Database(postgres_url)
    migrate(database)
    try:
        with pytest.raises(exc.DatabaseError, match="append-only"), database.transaction() as session:
            session.execute(text("TRUNCATE audit_events"))
    finally:
        database.dispose()


def test_audit_outcome_is_constrained(database: Database) -> None:
    values = {**_event_values(), "outcome": "maybe"}
    with pytest.raises(exc.IntegrityError), database.transaction() as session:
        session.execute(insert(AuditEvent).values(**values))


def test_naive_datetimes_are_refused(database: Database) -> None:
    values = {**_event_values(), "occurred_at": datetime(2026, 1, 1)}
    with pytest.raises(exc.StatementError, match="timezone-aware"), database.transaction() as session:
        session.execute(insert(AuditEvent).values(**values))


def test_grants_from_before_cedar_become_the_first_policy_version(database_url: str) -> None:
    """0006 carries every stored grant over as a Cedar policy, so an upgrade keeps exactly what was given."""
    db = Database(database_url)
    try:
        migrate(db, "0005")
        now = datetime.now(UTC)
        with db.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO principals (id, type, display_name, attributes, disabled, created_at) "
                    "VALUES ('service:old', 'service', 'old', '{}', false, :now)"
                ),
                {"now": now},
            )
            session.execute(
                text(
                    "INSERT INTO grants (id, principal_id, action, resource_type, resource_id, "
                    "created_at, created_by) VALUES "
                    "('grant:1', 'service:old', 'audit.read', 'audit_log', NULL, :now, 'x'), "
                    "('grant:2', 'service:old', 'keys.sign', 'key', 'release', :now, 'x')"
                ),
                {"now": now},
            )
        migrate(db)
        with db.read() as session:
            head = session.get(PolicyHead, 1)
            assert head is not None
            assert head.version == 1
            version = session.get(PolicyVersion, 1)
            assert version is not None
            policy_text = version.text
        compiled = compile_policies(policy_text, 1)
        assert compiled.custom_ids == ("grant:1", "grant:2")
        assert 'resource == Bastion::Key::"release"' in policy_text
    finally:
        db.dispose()


def test_the_light_head_check_agrees_with_alembic() -> None:
    from alembic.config import Config  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from bastion.store.migrate import SCRIPT_LOCATION  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    assert ScriptDirectory.from_config(config).get_current_head() == head_revision()

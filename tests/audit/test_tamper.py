"""Attacks on the stored log, each done for real with SQL by someone who can disable the triggers, and each
caught by verification — naming the first bad sequence number where one exists."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select, text, update

from bastion.app import Bastion
from bastion.audit.canonical import EVENT_FIELDS, canonical_bytes, leaf_hash
from bastion.audit.merkle import Frontier
from bastion.core.clock import FrozenClock
from bastion.store import Database
from bastion.store.tables import AuditEvent, AuditHead
from tests.audit.conftest import OPERATOR, populate

SIZE = 40  # events populated and covered by the fixture's checkpoint


def disable_guards(database: Database) -> None:
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            for table in ("audit_events", "audit_head", "audit_tree_nodes", "audit_checkpoints"):
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            names = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            for name in list(names):
                connection.execute(text(f"DROP TRIGGER {name}"))


@pytest.fixture
def logged(system: Bastion, clock: FrozenClock) -> Bastion:
    populate(system, clock, SIZE)
    system.trail.checkpoint(OPERATOR())  # covers the 40 events
    assert system.trail.verify(OPERATOR()).ok
    disable_guards(system.database)
    return system


def sql(system: Bastion, *statements: str) -> None:
    with system.database.transaction() as session:
        for statement in statements:
            session.execute(text(statement))


def last_seq(system: Bastion) -> int:
    with system.database.read() as session:
        return session.execute(select(AuditHead.size)).scalar_one() - 1


def verify(system: Bastion) -> tuple[int | None, list[str]]:
    report = system.trail.verify(OPERATOR())
    assert not report.ok
    return report.first_bad_seq, report.problems


def test_untouched_log_verifies(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 25)
    system.trail.checkpoint(OPERATOR())
    populate(system, clock, 5)
    report = system.trail.verify(OPERATOR())
    assert report.ok, report.problems
    assert report.checkpoints_checked == 1
    assert report.witnessed_checked == 1


def test_altered_row(logged: Bastion) -> None:
    sql(logged, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 17")
    first_bad, problems = verify(logged)
    assert first_bad == 17
    assert "event 17 does not match its leaf hash" in problems[0]


def test_altered_details(logged: Bastion) -> None:
    with logged.database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 9).values(details={"i": 9, "ratio": 0.25}))
    assert verify(logged)[0] == 9


def test_deleted_row(logged: Bastion) -> None:
    sql(logged, "DELETE FROM audit_events WHERE seq = 23")
    first_bad, problems = verify(logged)
    assert first_bad == 23
    assert "event 23 is missing" in problems[0]


def test_deleted_last_row(logged: Bastion) -> None:
    last = last_seq(logged)
    sql(logged, f"DELETE FROM audit_events WHERE seq = {last}")
    assert verify(logged)[0] == last


def test_inserted_row_in_the_middle(logged: Bastion) -> None:
    # Shift everything from 10 up by one (highest first), then slip a forged event in at 10.
    with logged.database.transaction() as session:
        for seq in range(last_seq(logged), 9, -1):
            session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        forged = session.get(AuditEvent, 11)
        assert forged is not None
        values = {name: getattr(forged, name) for name in EVENT_FIELDS}
        values.update(seq=10, event_id="00000000-0000-7000-8000-00000000f0f0", actor_id="user:mallory")
        session.execute(
            AuditEvent.__table__.insert().values(**values, leaf_hash=leaf_hash(canonical_bytes(values)))
        )
    assert verify(logged)[0] == 11


def test_inserted_row_at_the_end(logged: Bastion) -> None:
    end = last_seq(logged) + 1
    with logged.database.transaction() as session:
        last = session.get(AuditEvent, end - 1)
        assert last is not None
        values = {name: getattr(last, name) for name in EVENT_FIELDS}
        values.update(seq=end, event_id="00000000-0000-7000-8000-00000000f0f1")
        session.execute(
            AuditEvent.__table__.insert().values(**values, leaf_hash=leaf_hash(canonical_bytes(values)))
        )
    first_bad, problems = verify(logged)
    assert first_bad == end
    assert any("beyond the head" in problem for problem in problems)


def test_reordered_rows(logged: Bastion) -> None:
    sql(
        logged,
        "UPDATE audit_events SET seq = -1 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -1",
    )
    first_bad, problems = verify(logged)
    assert first_bad == 5
    assert "event 5 does not match" in problems[0]


def test_truncated_log(logged: Bastion) -> None:
    sql(logged, "DELETE FROM audit_events WHERE seq >= 30", "UPDATE audit_head SET size = 30")
    first_bad, problems = verify(logged)
    assert first_bad == 30
    assert any("truncated" in problem for problem in problems)
    assert any("witnessed tree of size 40" in problem for problem in problems)


def _rewrite_history(system: Bastion, change: Callable[[dict[str, object]], None]) -> None:
    """What an attacker with database write access but no signing key can do at most: rewrite events,
    recompute every leaf, node and the head so the database is self-consistent, and drop the checkpoints
    that no longer match (they cannot sign new ones)."""
    with system.database.transaction() as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        session.execute(text("DELETE FROM audit_tree_nodes"))
        session.execute(text("DELETE FROM audit_checkpoints"))
        frontier = Frontier()
        for row in rows:
            values = {name: getattr(row, name) for name in EVENT_FIELDS}
            change(values)
            leaf = leaf_hash(canonical_bytes(values))
            session.execute(
                update(AuditEvent)
                .where(AuditEvent.seq == row.seq)
                .values(**{k: v for k, v in values.items() if k != "seq"}, leaf_hash=leaf)
            )
            for level, index, value in frontier.append(leaf):
                if level:
                    session.execute(
                        text("INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                        {"l": level, "i": index, "h": value},
                    )
        session.execute(update(AuditHead).values(size=frontier.size, root_hash=frontier.root()))


def test_full_rewrite_with_recomputed_hashes_is_caught_by_the_witness(logged: Bastion) -> None:
    def scrub(values: dict[str, object]) -> None:
        if values["seq"] == 12:
            values["actor_id"] = "user:innocent"

    _rewrite_history(logged, scrub)
    first_bad, problems = verify(logged)
    assert any(
        "history was rewritten" in problem and "witnessed tree of size 40" in problem for problem in problems
    )
    assert first_bad == 0  # somewhere in the first witnessed range
    # and nothing else in the database betrays it: only the witness does
    assert all("witness" in problem for problem in problems)


def test_rewrite_with_a_new_signing_key_is_caught(logged: Bastion) -> None:
    """An attacker who cannot use the real key rewrites history and signs with a key of their own."""
    from bastion.audit import AuditTrail, InMemorySigner  # noqa: PLC0415

    _rewrite_history(logged, lambda values: None)
    forger = AuditTrail(logged.database, logged.uow, InMemorySigner(), logged.trail._witness, logged.clock)
    with pytest.raises(Exception, match="pinned"):
        forger.checkpoint(OPERATOR())  # the witness refuses to publish it
    report = forger.verify(OPERATOR())
    assert not report.ok
    assert any("pinned" in problem for problem in report.problems)


def test_forged_checkpoint_signature(logged: Bastion) -> None:
    with logged.database.transaction() as session:
        note = session.execute(text("SELECT note FROM audit_checkpoints")).scalar_one()
        body, _, signature = note.partition("\n\n")
        forged = body.replace(f"\n{SIZE}\n", f"\n{SIZE - 1}\n") + "\n\n" + signature
        session.execute(text("UPDATE audit_checkpoints SET note = :n"), {"n": forged})
    _, problems = verify(logged)
    assert any("invalid signature" in problem for problem in problems)


def test_cli_verify_exits_10_and_names_the_seq(
    logged: Bastion, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.cli.main import main  # noqa: PLC0415

    sql(logged, "UPDATE audit_events SET resource_id = 'm9' WHERE seq = 3")
    monkeypatch.setenv("BASTION_STATE_DIR", str(logged.settings.state_dir))
    monkeypatch.setenv("BASTION_DATABASE_URL", logged.settings.effective_database_url)
    assert main(["audit", "verify", "--json"]) == 10
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["first_bad_seq"] == 3

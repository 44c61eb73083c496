"""Pruning removes whole ranges behind a retained checkpoint, and the log stays verifiable and provable."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from bastion.app import Bastion
from bastion.audit.export import Exporter, SinkKind, SinkSettings, build_sink
from bastion.client import event_leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion
from bastion.core.clock import FrozenClock
from bastion.core.errors import Conflict, InvalidInput
from bastion.store.tables import AuditEvent
from tests.audit.conftest import OPERATOR, populate
from tests.audit.test_tamper import disable_guards


def count(system: Bastion) -> int:
    with system.database.read() as session:
        return session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


@pytest.mark.parametrize("events", [20, 21])  # an even and an odd prune point
def test_prune_keeps_the_log_verifiable_and_provable(
    system: Bastion, clock: FrozenClock, events: int
) -> None:
    populate(system, clock, events)
    retained = system.trail.checkpoint(OPERATOR())
    populate(system, clock, 9)
    before = count(system)

    plan = system.trail.prune(OPERATOR(), retained.size, dry_run=True)
    assert (plan.events, count(system)) == (retained.size, before + 1)  # nothing gone; the dry run audited

    system.trail.prune(OPERATOR(), retained.size)
    assert count(system) == before - retained.size + 2  # the dry run and the prune are audited too

    report = system.trail.verify(OPERATOR())
    assert report.ok, report.problems

    latest = system.trail.checkpoint(OPERATOR())
    key = system.trail.verifier_key()
    proof = system.trail.prove_inclusion(OPERATOR(), retained.size).as_json()
    checkpoint = verify_checkpoint(proof["checkpoint"], key)
    assert event_leaf_hash(proof["event"]).hex() == proof["leaf_hash"]
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        retained.size,
        checkpoint.size,
        [bytes.fromhex(p) for p in proof["path"]],
        checkpoint.root_hash,
    )
    consistency = system.trail.prove_consistency(OPERATOR(), retained.size, latest.size).as_json()
    verify_consistency(
        retained.size,
        latest.size,
        retained.root_hash,
        latest.root_hash,
        [bytes.fromhex(p) for p in consistency["path"]],
    )


def test_prune_only_up_to_a_checkpoint(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 10)
    system.trail.checkpoint(OPERATOR())
    with pytest.raises(InvalidInput, match="no checkpoint at tree size 7"):
        system.trail.prune(OPERATOR(), 7)
    system.trail.prune(OPERATOR(), 10)
    with pytest.raises(InvalidInput, match="already pruned"):
        system.trail.prune(OPERATOR(), 10)
    with pytest.raises(InvalidInput, match="pruned"):
        system.trail.prove_consistency(OPERATOR(), 5, 10)


def test_prune_waits_for_siem_sinks(system: Bastion, clock: FrozenClock, tmp_path: object) -> None:
    populate(system, clock, 6)
    signed = system.trail.checkpoint(OPERATOR())
    sink = SinkSettings(name="down", kind=SinkKind.SYSLOG, address="127.0.0.1:1")  # nothing listens
    exporter = Exporter(system.database, system.uow, [build_sink(sink)], clock)
    exporter.run_once(OPERATOR())
    exporter.close()
    with pytest.raises(Conflict, match="down"):
        system.trail.prune(OPERATOR(), signed.size)


def test_tampering_after_a_prune_is_still_caught(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 16)
    signed = system.trail.checkpoint(OPERATOR())
    populate(system, clock, 5)
    system.trail.prune(OPERATOR(), signed.size)
    disable_guards(system.database)
    with system.database.transaction() as session:
        session.execute(text(f"UPDATE audit_events SET actor_id = 'x' WHERE seq = {signed.size + 2}"))
    report = system.trail.verify(OPERATOR())
    assert report.first_bad_seq == signed.size + 2
    with system.database.transaction() as session:  # damage the retained subtree hashes instead
        session.execute(
            text(f"UPDATE audit_events SET actor_id = 'user:carol' WHERE seq = {signed.size + 2}")
        )
        session.execute(
            text("UPDATE audit_tree_nodes SET hash = :h WHERE level = 4 AND idx = 0"), {"h": b"\x07" * 32}
        )
    report = system.trail.verify(OPERATOR())
    assert any("retained subtree hashes" in problem for problem in report.problems)

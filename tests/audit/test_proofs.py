"""Proofs printed by the server verify with the SDK's offline verifier against the signed checkpoint."""

from __future__ import annotations

import pytest

from bastion.app import Bastion
from bastion.client import event_leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion
from bastion.core.clock import FrozenClock
from bastion.core.errors import InvalidInput, NotFound
from tests.audit.conftest import OPERATOR, populate


def test_inclusion_proofs_verify_offline(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 37)
    signed = system.trail.checkpoint(OPERATOR())
    key = system.trail.verifier_key()
    for seq in (0, 1, 17, 36):
        proof = system.trail.prove_inclusion(OPERATOR(), seq).as_json()
        checkpoint = verify_checkpoint(proof["checkpoint"], key)
        assert checkpoint.size == signed.size == 37
        leaf = bytes.fromhex(proof["leaf_hash"])
        assert event_leaf_hash(proof["event"]) == leaf  # the event itself, not just a hash, is proven
        verify_inclusion(
            leaf, seq, checkpoint.size, [bytes.fromhex(p) for p in proof["path"]], checkpoint.root_hash
        )


def test_consistency_proofs_verify_offline(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 10)
    first = system.trail.checkpoint(OPERATOR())
    populate(system, clock, 25)
    second = system.trail.checkpoint(OPERATOR())
    proof = system.trail.prove_consistency(OPERATOR(), first.size, second.size).as_json()
    key = system.trail.verifier_key()
    old = verify_checkpoint(proof["first_checkpoint"], key)
    new = verify_checkpoint(proof["second_checkpoint"], key)
    verify_consistency(
        old.size, new.size, old.root_hash, new.root_hash, [bytes.fromhex(p) for p in proof["path"]]
    )


def test_search_output_hashes_to_the_stored_leaf(system: Bastion, clock: FrozenClock) -> None:
    from bastion.audit import AuditFilter  # noqa: PLC0415

    populate(system, clock, 5)
    for event in system.audit.search(OPERATOR(), AuditFilter(action="model.predict")).events:
        assert event_leaf_hash(event.as_json()).hex() == event.leaf_hash


def test_proof_requests_that_cannot_be_met_are_clear_errors(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 4)
    with pytest.raises(NotFound, match="No checkpoint covers"):
        system.trail.prove_inclusion(OPERATOR(), 2)
    system.trail.checkpoint(OPERATOR())
    with pytest.raises(NotFound, match="No checkpoint covers"):
        system.trail.prove_inclusion(OPERATOR(), 40)
    with pytest.raises(NotFound, match="no checkpoint at tree size 3"):
        system.trail.prove_inclusion(OPERATOR(), 1, tree_size=3)
    with pytest.raises(InvalidInput):
        system.trail.prove_inclusion(OPERATOR(), -1)
    with pytest.raises(InvalidInput):
        system.trail.prove_consistency(OPERATOR(), 3, 2)
    with pytest.raises(InvalidInput, match="only"):
        system.trail.prove_consistency(OPERATOR(), 1, 500)


def test_checkpoint_of_an_unchanged_log_is_reused(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 3)
    first = system.trail.checkpoint(OPERATOR())
    assert first.size == 3

    second = system.trail.checkpoint(OPERATOR())
    assert second.size > first.size  # the checkpoint and its signing were themselves audited
    assert len(system.trail._witness.checkpoints()) == 2  # type: ignore[union-attr]


def test_checkpoints_are_signed_through_the_key_manager_with_a_scoped_grant(
    system: Bastion, clock: FrozenClock
) -> None:
    from bastion.app.container import system_context  # noqa: PLC0415
    from bastion.audit import AuditFilter  # noqa: PLC0415
    from bastion.core.errors import PermissionDenied  # noqa: PLC0415
    from bastion.keys.model import KeyPurpose  # noqa: PLC0415

    populate(system, clock, 3)
    signed = system.trail.checkpoint(OPERATOR())
    verify_checkpoint(signed.note, system.trail.verifier_key())
    signs = system.audit.search(OPERATOR(), AuditFilter(action="keys.sign")).events
    assert [(e.actor_id, e.resource_id, e.outcome) for e in signs] == [
        ("system:bastion", "bastion/audit-checkpoint", "allowed")
    ]
    [key] = [info for info in system.keys.list_keys(OPERATOR()) if info.name == "bastion/audit-checkpoint"]
    assert key.purpose is KeyPurpose.SIGN
    system.keys.create(OPERATOR(), "other", KeyPurpose.SIGN)
    with pytest.raises(PermissionDenied):  # the system principal's grant covers the checkpoint key only
        system.keys.sign(system_context("test"), "other", b"x")


def test_periodic_checkpoint_skips_an_idle_log(system: Bastion, clock: FrozenClock) -> None:
    from bastion.app.container import system_context  # noqa: PLC0415

    job = system_context("audit-checkpoint")
    populate(system, clock, 2)
    first = system.trail.checkpoint_if_changed(job)
    assert first is not None
    for _ in range(3):  # nothing happened but checkpointing: no new checkpoints, no growth
        assert system.trail.checkpoint_if_changed(job) is None
    populate(system, clock, 1)
    assert system.trail.checkpoint_if_changed(job) is not None

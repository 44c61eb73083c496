"""The active policy version as decisions see it: re-read at most every TTL — behind the decisions' backs
while in use, so none waits for the read — and never older than the TTL."""

from __future__ import annotations

from datetime import timedelta

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.core.clock import FrozenClock
from bastion.policy import PolicySource
from tests.core.test_cache import Deferred

TEXT = '@id("v") permit(principal in Bastion::Role::"viewer", action, resource);'


def test_a_version_another_replica_activates_is_read_in_the_background(
    system: Bastion, clock: FrozenClock
) -> None:
    background = Deferred()
    source = PolicySource(system.database, clock, background=background)  # this replica's
    assert source.current().compiled.version == 0
    ops = operator_context()
    version = system.policies.write(ops, TEXT).version
    system.policies.activate(ops, version)  # by another replica
    clock.advance(timedelta(seconds=0.5))
    assert source.current().compiled.version == 0 and background.jobs == []  # young: cached
    clock.advance(timedelta(seconds=1.2))  # past four fifths of the TTL: the reload is due
    assert source.current().compiled.version == 0  # still within the TTL: answered from memory ...
    assert len(background.jobs) == 1  # ... and read again behind the decision
    background.run()
    assert source.current().compiled.version == version


def test_no_decision_sees_a_version_older_than_the_ttl(system: Bastion, clock: FrozenClock) -> None:
    background = Deferred()
    source = PolicySource(system.database, clock, background=background)
    assert source.current().compiled.version == 0
    ops = operator_context()
    version = system.policies.write(ops, TEXT).version
    system.policies.activate(ops, version)
    clock.advance(timedelta(seconds=1.7))
    source.current()  # a reload is asked for, but has not run
    assert background.jobs
    clock.advance(timedelta(seconds=0.3))
    assert source.current().compiled.version == version  # expired: read before deciding
    background.run()  # the late reload does not put the older reading back
    assert source.current().compiled.version == version

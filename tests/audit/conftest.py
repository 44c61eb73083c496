from __future__ import annotations

from datetime import timedelta

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.core.clock import FrozenClock
from bastion.spine import AuditRecord, Context, Outcome, Principal, PrincipalType, Resource

USER = Principal(id="user:carol", type=PrincipalType.USER, auth_method="test")


def record(clock: FrozenClock, i: int) -> AuditRecord:
    clock.advance(timedelta(milliseconds=1))
    return AuditRecord(
        occurred_at=clock.now(),
        context=Context(USER, request_id=f"req-{i}", source_address="10.1.2.3"),
        action="model.predict",
        resource=Resource("model", f"m{i % 3}"),
        outcome=Outcome.ALLOWED,
        reason="granted",
        policy_ids=("p1",),
        data_categories=("pii",),
        details={"i": i, "ratio": 0.5},
    )


def populate(system: Bastion, clock: FrozenClock, count: int) -> None:
    futures = [system.writer.submit(record(clock, i)) for i in range(count)]
    for future in futures:
        future.result(30)


OPERATOR = operator_context

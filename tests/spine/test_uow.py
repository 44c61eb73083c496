"""The spine's guarantees: authorize -> act -> audit in one transaction, deny by default, fail closed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.orm import Session

from bastion.audit import MerkleAuditLog
from bastion.core.clock import FrozenClock
from bastion.core.errors import AuditUnavailable, AuthenticationRequired, Conflict, PermissionDenied
from bastion.spine import ANONYMOUS, AuditRecord, Context, Decision, Principal, PrincipalType, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store import Database
from bastion.store.tables import AuditEvent
from tests.spine.allow import AllowList, Grant

# A table that exists only in these tests, standing in for any service's data.
widgets = Table(
    "test_widgets", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(50))
)

ALICE = Principal(id="user:alice", type=PrincipalType.USER, auth_method="test")
ALICE_MAY_CREATE = Grant(
    id="test:alice:create", principal_id=ALICE.id, action="widget.create", resource_type="widget"
)


@pytest.fixture
def db(database: Database) -> Database:
    widgets.create(database.engine)
    return database


def uow_for(db: Database, clock: FrozenClock, *grants: Grant, audit: Any = None) -> UnitOfWork:
    return UnitOfWork(db, AllowList(grants), audit or MerkleAuditLog(), clock)


def create_widget(uow: UnitOfWork, context: Context, name: str, **details: Any) -> None:
    with uow.act(context, "widget.create", Resource("widget", name), details=details) as work:
        work.session.execute(widgets.insert().values(name=name))
        work.details["created"] = True


def widget_names(db: Database) -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(widgets.c.name)))


def audit_rows(db: Database) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_allowed_action_commits_with_its_audit_event(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)
    context = Context(
        ALICE, request_id="req-1", source_address="10.0.0.7", user_agent="pytest", purpose="testing"
    )

    create_widget(uow, context, "w1")

    assert widget_names(db) == ["w1"]
    [event] = audit_rows(db)
    assert (event.actor_id, event.actor_type, event.auth_method) == ("user:alice", "user", "test")
    assert (event.action, event.resource_type, event.resource_id) == ("widget.create", "widget", "w1")
    assert event.outcome == "allowed"
    assert event.policy_ids == ["test:alice:create"]
    assert (event.request_id, event.source_address, event.user_agent, event.purpose) == (
        "req-1",
        "10.0.0.7",
        "pytest",
        "testing",
    )
    assert event.details == {"created": True}
    assert event.occurred_at == clock.now()


def test_deny_by_default_refuses_and_audits_the_denial(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock)  # no grants at all

    with pytest.raises(PermissionDenied):
        create_widget(uow, Context(ALICE), "w1")

    assert widget_names(db) == []
    [event] = audit_rows(db)
    assert event.outcome == "denied"
    assert "deny by default" in event.reason
    assert event.policy_ids == []


@pytest.mark.parametrize(
    "grant",
    [
        Grant(id="g", principal_id="user:bob", action="widget.create", resource_type="widget"),
        Grant(id="g", principal_id=ALICE.id, action="widget.delete", resource_type="widget"),
        Grant(id="g", principal_id=ALICE.id, action="widget.create", resource_type="gadget"),
    ],
    ids=["other-principal", "other-action", "other-resource-type"],
)
def test_a_grant_means_exactly_what_it_says(db: Database, clock: FrozenClock, grant: Grant) -> None:
    with pytest.raises(PermissionDenied):
        create_widget(uow_for(db, clock, grant), Context(ALICE), "w1")
    assert widget_names(db) == []


def test_anonymous_caller_is_told_to_authenticate_and_audited(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)
    with pytest.raises(AuthenticationRequired):
        create_widget(uow, Context(ANONYMOUS), "w1")
    [event] = audit_rows(db)
    assert (event.actor_id, event.outcome, event.reason) == ("anonymous", "denied", "unauthenticated")


def _reject_audit_inserts(db: Database) -> None:
    """Make the database itself refuse audit rows, the way a full disk or a revoked grant would."""
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(
                text(
                    "CREATE FUNCTION test_reject() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit storage offline'; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER test_reject BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION test_reject()"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER test_reject BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit storage offline'); END"
                )
            )


def test_failed_audit_append_leaves_no_trace_of_the_action(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)
    _reject_audit_inserts(db)

    with pytest.raises(AuditUnavailable):
        create_widget(uow, Context(ALICE), "w1")

    assert widget_names(db) == []
    assert audit_rows(db) == []


def test_denial_whose_audit_fails_still_refuses(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock)
    _reject_audit_inserts(db)
    with pytest.raises(AuditUnavailable):
        create_widget(uow, Context(ALICE), "w1")
    assert widget_names(db) == []


def test_secret_in_audit_details_is_refused_and_the_action_rolled_back(
    db: Database, clock: FrozenClock
) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)
    with pytest.raises(AuditUnavailable) as raised:
        create_widget(uow, Context(ALICE), "w1", api_key="bst_abc123_" + "s3cr3tvalue" * 4)
    assert "s3cr3tvalue" not in str(raised.value) + raised.value.remedy
    assert widget_names(db) == []
    assert audit_rows(db) == []


def test_failing_action_rolls_back_and_is_audited_as_error(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)

    with pytest.raises(Conflict), uow.act(Context(ALICE), "widget.create", Resource("widget", "w1")) as work:
        work.session.execute(widgets.insert().values(name="w1"))
        raise Conflict("widget w1 exists")

    assert widget_names(db) == []
    [event] = audit_rows(db)
    assert (event.outcome, event.reason) == ("error", "resource.conflict")


def test_unexpected_exception_is_audited_without_its_message(db: Database, clock: FrozenClock) -> None:
    uow = uow_for(db, clock, ALICE_MAY_CREATE)
    with pytest.raises(RuntimeError), uow.act(Context(ALICE), "widget.create", Resource("widget", "w1")):
        raise RuntimeError("password=hunter2 leaked into an exception")
    [event] = audit_rows(db)
    assert (event.outcome, event.reason) == ("error", "internal.error")
    assert "hunter2" not in str(event.details)


class ExplodingAuthorizer:
    def ready(self, context: Context) -> bool:
        return True

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        raise RuntimeError("policy store unreachable")


def test_authorizer_failure_fails_closed_and_is_audited(db: Database, clock: FrozenClock) -> None:
    uow = UnitOfWork(db, ExplodingAuthorizer(), MerkleAuditLog(), clock)
    with pytest.raises(PermissionDenied):
        create_widget(uow, Context(ALICE), "w1")
    assert widget_names(db) == []
    [event] = audit_rows(db)
    assert (event.outcome, event.reason) == ("denied", "authorizer failed")


class CountingAudit(MerkleAuditLog):
    def __init__(self) -> None:
        self.appended: list[AuditRecord] = []

    def append(self, session: Session, record: AuditRecord) -> int:
        self.appended.append(record)
        return super().append(session, record)


def test_every_action_writes_exactly_one_audit_event(db: Database, clock: FrozenClock) -> None:
    audit = CountingAudit()
    uow = uow_for(db, clock, ALICE_MAY_CREATE, audit=audit)
    for name in ("a", "b", "c"):
        create_widget(uow, Context(ALICE), name)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 3
    assert [record.resource.id for record in audit.appended] == ["a", "b", "c"]

"""Searching the audit log: filters, keyset pagination, and the search itself audited."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

import pytest

from bastion.audit import AuditFilter, AuditQueries, MerkleAuditLog
from bastion.core.clock import FrozenClock
from bastion.core.errors import AuthenticationRequired, InvalidInput, PermissionDenied
from bastion.spine import ANONYMOUS, Context, Outcome, Principal, PrincipalType, Resource, UnitOfWork
from bastion.store import Database
from tests.conftest import cedar_authorizer

# Holds the shipped auditor role the way an external identity provider's group mapping gives it.
AUDITOR = Principal(
    id="user:auditor",
    type=PrincipalType.USER,
    auth_method="test",
    attributes=MappingProxyType({"roles": ("auditor",)}),
)


def setup(database: Database, clock: FrozenClock) -> tuple[UnitOfWork, AuditQueries]:
    uow = UnitOfWork(database, cedar_authorizer(database, clock), MerkleAuditLog(), clock)
    return uow, AuditQueries(uow)


def test_search_filters_and_records_itself(database: Database, clock: FrozenClock) -> None:
    uow, queries = setup(database, clock)
    for i in range(3):
        uow.refuse(Context(ANONYMOUS), "auth.authenticate", Resource("endpoint", f"/p{i}"), "bad token")
        clock.advance(timedelta(seconds=1))
    page = queries.search(Context(AUDITOR), AuditFilter(action="auth.authenticate", outcome=Outcome.DENIED))
    assert [event.resource_id for event in page.events] == ["/p0", "/p1", "/p2"]
    assert page.next_after_seq is None

    since = clock.now() - timedelta(seconds=2)
    page = queries.search(Context(AUDITOR), AuditFilter(since=since, action="auth.authenticate"))
    assert [event.resource_id for event in page.events] == ["/p1", "/p2"]

    reads = queries.search(Context(AUDITOR), AuditFilter(action="audit.read")).events
    assert len(reads) == 2  # the two earlier searches, each recorded with its filter
    assert reads[0].details["filter"] == {"action": "auth.authenticate", "outcome": "denied", "limit": "100"}
    assert reads[0].details["returned"] == 3


def test_pagination_walks_every_event_once(database: Database, clock: FrozenClock) -> None:
    uow, queries = setup(database, clock)
    for i in range(7):
        uow.refuse(Context(ANONYMOUS), "auth.authenticate", Resource("endpoint", str(i)), "x")
    seen: list[str] = []
    after = None
    while True:
        page = queries.search(
            Context(AUDITOR), AuditFilter(action="auth.authenticate", after_seq=after, limit=3)
        )
        seen += [event.resource_id for event in page.events]
        if page.next_after_seq is None:
            break
        after = page.next_after_seq
    assert seen == [str(i) for i in range(7)]


def test_reading_the_audit_log_needs_a_role(database: Database, clock: FrozenClock) -> None:
    _, queries = setup(database, clock)
    stranger = Principal(id="user:stranger", type=PrincipalType.USER, auth_method="test")
    with pytest.raises(PermissionDenied):
        queries.search(Context(stranger), AuditFilter())
    with pytest.raises(AuthenticationRequired):
        queries.search(Context(ANONYMOUS), AuditFilter())
    denied = queries.search(Context(AUDITOR), AuditFilter(outcome=Outcome.DENIED)).events
    assert [(event.actor_id, event.action) for event in denied] == [
        ("user:stranger", "audit.read"),
        ("anonymous", "audit.read"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 0}, {"limit": 1001}, {"after_seq": -1}],
)
def test_invalid_filters_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        AuditFilter(**kwargs)  # type: ignore[arg-type]


def test_naive_or_inverted_time_ranges_are_refused(clock: FrozenClock) -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        AuditFilter(since=clock.now().replace(tzinfo=None))
    with pytest.raises(InvalidInput, match="later"):
        AuditFilter(since=clock.now(), until=clock.now() - timedelta(seconds=1))

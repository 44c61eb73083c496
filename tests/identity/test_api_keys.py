"""API keys over real HTTP requests (in-process ASGI, real database): the whole path from a key to an
authorized, audited call — and every way an attacker can present a bad one, each a 401 with an audit record,
never a 5xx."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event, select, update

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.errors import InvalidCredentials, InvalidInput, PermissionDenied
from bastion.identity import IssuedKey
from bastion.spine import Context, Credentials, Principal, PrincipalType, Resource
from bastion.store.tables import ApiKey

EVENTS = "/v1/audit/events"


@pytest.fixture
def reader(system: Bastion) -> IssuedKey:
    """A service account allowed to read the audit log, and a key for it."""
    ops = operator_context()
    system.identity.create_principal(ops, "service:siem-reader")
    system.identity.assign_role(ops, "service:siem-reader", "auditor")
    return system.identity.create_api_key(ops, "service:siem-reader", expires_in=timedelta(days=30))


def split(token: str) -> tuple[str, str]:
    """(key id, secret): ``bst_`` + 16-character id + ``_`` + secret (which may itself contain ``_``)."""
    return token[4:20], token[21:]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_key_authenticates_and_its_role_authorizes(
    client: TestClient, system: Bastion, reader: IssuedKey
) -> None:
    response = client.get(EVENTS, headers=bearer(reader.token))
    assert response.status_code == 200
    reads = system.audit.search(operator_context(), AuditFilter(actor="service:siem-reader")).events
    assert [(e.action, e.auth_method, e.outcome) for e in reads] == [("audit.read", "api_key", "allowed")]
    assert reader.token not in repr(reader)
    with system.database.read() as session:
        stored = session.get(ApiKey, reader.key_id)
        assert stored is not None
        assert split(reader.token)[1].encode() not in stored.secret_hash  # only a keyed hash is stored
        assert stored.last_used_at is not None


def test_bearer_scheme_is_case_insensitive(client: TestClient, reader: IssuedKey) -> None:
    assert client.get(EVENTS, headers={"authorization": f"bearer {reader.token}"}).status_code == 200


def _forgeries(token: str) -> dict[str, str]:
    key_id, secret = split(token)
    other = "A" if secret[0] != "A" else "B"
    return {
        "wrong secret, valid id": f"Bearer bst_{key_id}_{other}{secret[1:]}",
        "unknown id": f"Bearer bst_{'a' * 16}_{secret}",
        "truncated secret": f"Bearer bst_{key_id}_{secret[:-1]}",
        "extra characters": f"Bearer {token}x",
        "tab instead of space": f"Bearer\t{token}",
        "basic scheme": f"Basic {token}",
        "sql in the id": f"Bearer bst_' or 1=1 --_{secret}",
        "only the secret": f"Bearer {secret}",
        "two tokens": f"Bearer {token} {token}",
        "uppercased token": f"Bearer {token.upper()}",
    }


@pytest.mark.parametrize("case", list(_forgeries("bst_" + "a" * 16 + "_" + "b" * 43)))
def test_forged_keys_are_401_and_audited(
    client: TestClient, system: Bastion, reader: IssuedKey, case: str
) -> None:
    header = _forgeries(reader.token)[case]
    response = client.get(EVENTS, headers={"authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_credentials"
    refusals = system.audit.search(operator_context(), AuditFilter(action="auth.authenticate")).events
    assert len(refusals) == 1
    assert split(reader.token)[1] not in str(refusals[0].details) + response.text


def test_revocation_applies_within_seconds(
    client: TestClient, system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 200
    system.identity.revoke_api_key(operator_context(), reader.key_id)
    clock.advance(timedelta(seconds=2))  # the authenticator's cache window
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 401


def test_expiry(client: TestClient, reader: IssuedKey, clock: FrozenClock) -> None:
    clock.advance(timedelta(days=30, seconds=1))
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 401


def test_rotation_keeps_the_old_key_only_for_the_overlap(
    client: TestClient, system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    fresh = system.identity.rotate_api_key(operator_context(), reader.key_id, overlap=timedelta(minutes=10))
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 200
    assert client.get(EVENTS, headers=bearer(fresh.token)).status_code == 200
    clock.advance(timedelta(minutes=11))
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 401
    assert client.get(EVENTS, headers=bearer(fresh.token)).status_code == 200


def test_scopes_only_narrow(client: TestClient, system: Bastion) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, "service:narrow")
    system.identity.assign_role(ops, "service:narrow", "auditor")
    scoped = system.identity.create_api_key(ops, "service:narrow", scopes=("keys.*",))
    response = client.get(EVENTS, headers=bearer(scoped.token))
    assert response.status_code == 403  # its principal may read the audit log; this key may not
    with pytest.raises(InvalidInput):
        system.identity.create_api_key(ops, "service:narrow", scopes=("*",))


def test_no_escalation_through_identity_calls(system: Bastion, reader: IssuedKey) -> None:
    """A principal that may read the audit log cannot mint keys, grant itself, or create principals."""
    me = Context(Principal(id="service:siem-reader", type=PrincipalType.SERVICE, auth_method="api_key"))
    for attempt in (
        lambda: system.identity.create_api_key(me, "service:siem-reader"),
        lambda: system.identity.create_api_key(me, "user:admin"),
        lambda: system.identity.assign_role(me, "service:siem-reader", "security-admin"),
        lambda: system.identity.create_principal(me, "service:sock-puppet"),
        lambda: system.identity.revoke_api_key(me, reader.key_id),
    ):
        with pytest.raises(PermissionDenied):
            attempt()


def test_invalid_identity_input(system: Bastion) -> None:
    ops = operator_context()
    for bad in ("admin", "user:Admin", "role:x", "service:", "group:"):
        with pytest.raises(InvalidInput):
            system.identity.create_principal(ops, bad)
    system.identity.create_principal(ops, "user:ada")
    for role, scope in (("*", None), ("Auditor", None), ("auditor", Resource("widget", "*"))):
        with pytest.raises(InvalidInput):
            system.identity.assign_role(ops, "user:ada", role, resource=scope)
    for attributes in (
        {"scopes": "audit.*"},
        {"roles": "security-admin"},
        {"clearance": "top"},
        {"Bad": "x"},
    ):
        with pytest.raises(InvalidInput):
            system.identity.create_principal(ops, "user:forger", attributes=attributes)
    with pytest.raises(InvalidInput):
        system.identity.create_api_key(ops, "user:ada", expires_in=timedelta(days=400))
    with system.database.read() as session:
        assert session.execute(select(ApiKey)).first() is None


def test_disabling_a_principal_refuses_its_keys_and_tokens(
    client: TestClient, system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    principal = system.authenticator.authenticate(Credentials("bearer", SecretStr(reader.token)))
    token = system.tokens.issue(Context(principal), ()).token
    assert client.get(EVENTS, headers=bearer(token)).status_code == 200
    system.identity.set_disabled(operator_context(), "service:siem-reader", disabled=True)
    clock.advance(timedelta(seconds=2))
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 401
    assert client.get(EVENTS, headers=bearer(token)).status_code == 401
    system.identity.set_disabled(operator_context(), "service:siem-reader", disabled=False)
    clock.advance(timedelta(seconds=2))
    assert client.get(EVENTS, headers=bearer(reader.token)).status_code == 200


def test_the_cache_only_check_answers_only_what_the_cache_proves(
    system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    """What a request on the event loop may check without blocking: a key verified from the cache alone.
    Anything it cannot prove — not cached, forged, expired from the cache — is left to ``authenticate``."""
    authenticator = system.authenticator

    def credentials(header: str) -> Credentials:
        scheme, _, value = header.partition(" ")
        return Credentials(scheme=scheme.lower(), value=SecretStr(value))

    key = credentials(f"Bearer {reader.token}")
    assert authenticator.authenticate_cached(key) is None  # never seen: it must be loaded
    principal = authenticator.authenticate(key)
    assert authenticator.authenticate_cached(key) == principal
    for forged in _forgeries(reader.token).values():
        assert authenticator.authenticate_cached(credentials(forged)) is None
    assert authenticator.authenticate_cached(None) is None  # anonymous: decided (and audited) elsewhere
    clock.advance(timedelta(seconds=2))
    assert authenticator.authenticate_cached(key) is None  # the cache window passed: loaded again
    system.identity.revoke_api_key(operator_context(), reader.key_id)
    with pytest.raises(InvalidCredentials):
        authenticator.authenticate(key)
    assert authenticator.authenticate_cached(key) is None


def test_writing_a_keys_last_use_never_stretches_the_revocation_window(
    system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    """The last use is written at most once a minute, from a record read earlier: that write must not make
    the record count as freshly read, or a revocation since could be honoured up to two cache windows late."""
    authenticator = system.authenticator
    key = Credentials(scheme="bearer", value=SecretStr(reader.token))
    authenticator.authenticate(key)  # first use: written
    clock.advance(timedelta(seconds=59.5))  # the cache window has passed: read again, last use 59.5 s old
    authenticator.authenticate(key)
    with system.database.transaction() as session:  # revoked by another replica, straight after that read
        session.execute(update(ApiKey).where(ApiKey.key_id == reader.key_id).values(revoked_at=clock.now()))
    clock.advance(timedelta(seconds=1.5))  # within the window: the cached record answers — and, a minute
    authenticator.authenticate(key)  # after the last write, the use is written again
    clock.advance(timedelta(seconds=0.6))  # the window of the read is over, though not of the write
    with pytest.raises(InvalidCredentials):
        authenticator.authenticate(key)


def test_callers_using_a_key_at_once_write_its_last_use_once(
    system: Bastion, reader: IssuedKey, clock: FrozenClock
) -> None:
    authenticator = system.authenticator
    key = Credentials(scheme="bearer", value=SecretStr(reader.token))
    authenticator.authenticate(key)
    clock.advance(timedelta(minutes=1))
    writes, writing = [], threading.Event()

    def slow_update(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE api_keys"):
            writes.append(statement)
            writing.set()
            time.sleep(0.3)  # the others arrive while it is being written

    event.listen(system.database.engine, "before_cursor_execute", slow_update)
    try:
        with ThreadPoolExecutor(6) as pool:
            first = pool.submit(authenticator.authenticate, key)
            assert writing.wait(5)
            others = [pool.submit(authenticator.authenticate, key) for _ in range(5)]
            principals = [first.result(timeout=10)] + [other.result(timeout=10) for other in others]
    finally:
        event.remove(system.database.engine, "before_cursor_execute", slow_update)
    assert {principal.id for principal in principals} == {"service:siem-reader"}
    assert len(writes) == 1

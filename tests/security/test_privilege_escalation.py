"""Property: no sequence of calls by a non-admin principal gives it a permission its policies do not allow —
minting keys for itself or others, giving itself roles, editing or activating policies, approving its own
elevation, creating principals, revoking others' keys, rotating its
way to a wider key, or using a token to do any of it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bastion.app import Bastion, build
from bastion.app.container import operator_context
from bastion.core.errors import BastionError
from bastion.core.settings import load_settings
from bastion.spine import Context, Principal, PrincipalType, Resource
from bastion.store import migrate
from bastion.store.tables import ApiKey, GroupMember, RoleBinding

WIDE_OPEN = '@id("all") permit(principal, action, resource);'
LOW = "service:low"
OTHER = "service:other"
PROBES = [  # what the low principal might try to gain
    ("identity.apikeys.create", Resource("principal", LOW)),
    ("identity.apikeys.create", Resource("principal", OTHER)),
    ("identity.roles.assign", Resource("principal", LOW)),
    ("policies.write", Resource("policy", "custom")),
    ("policies.activate", Resource("policy", "custom")),
    ("identity.elevations.approve", Resource("elevation", "e", attributes={"owner": LOW})),
    ("identity.breakglass.create", Resource("principal", "user:break-glass")),
    ("identity.principals.create", Resource("principal", "service:new")),
    ("identity.apikeys.revoke", Resource("api_key", "any")),
    ("keys.create", Resource("key", "mine")),
    ("keys.decrypt", Resource("key", "bastion/secrets")),
    ("secrets.read", Resource("secret", "bastion/api-key-pepper")),
    ("audit.read", Resource("audit_log", "main")),
    ("audit.prune", Resource("audit_log", "main")),
    ("backup.create", Resource("state", "main")),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bastion, str]]:
    root: Path = tmp_path_factory.mktemp("escalation")
    system = build(load_settings(overrides={"state_dir": root}))
    migrate(system.database)
    ops = operator_context()
    for principal in (LOW, OTHER):
        system.identity.create_principal(ops, principal)
    system.identity.assign_role(ops, LOW, "auditor", resource=Resource("audit_log", "main"))
    other_key = system.identity.create_api_key(ops, OTHER).key_id
    yield system, other_key
    system.close()


def allowed(system: Bastion, context: Context) -> set[str]:
    authorizer = system.uow._authorizer
    return {f"{a}:{r.type}:{r.id}" for a, r in PROBES if authorizer.authorize(context, a, r).allowed}


def moves(system: Bastion, me: Context, other_key: str) -> list[Callable[[], object]]:
    identity = system.identity
    return [
        lambda: identity.create_api_key(me, LOW),
        lambda: identity.create_api_key(me, OTHER),
        lambda: identity.create_api_key(me, LOW, scopes=("identity.*",)),
        lambda: identity.assign_role(me, LOW, "security-admin"),
        lambda: identity.assign_role(me, LOW, "operator", resource=Resource("key", "*")),
        lambda: identity.assign_role(me, OTHER, "auditor"),
        lambda: system.policies.write(me, WIDE_OPEN),
        lambda: system.policies.activate(me, 1),
        lambda: system.elevations.approve(
            me, system.elevations.request(me, "security-admin", "just because", timedelta(minutes=5)).id
        ),
        lambda: identity.create_break_glass(me),
        lambda: identity.create_principal(me, "service:sock-puppet"),
        lambda: identity.revoke_api_key(me, other_key),
        lambda: identity.rotate_api_key(me, other_key),
        lambda: identity.revoke_token(me, "someone-elses-jti"),
        lambda: system.keys.create(
            me, "mine", __import__("bastion.keys.model").keys.model.KeyPurpose.ENCRYPT
        ),
        lambda: system.secrets.get(me, "bastion/api-key-pepper"),
        lambda: system.trail.prune(me, 1),
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(min_value=0, max_value=16), min_size=1, max_size=8),
    st.sampled_from(["api_key", "jwt"]),
)
def test_no_call_sequence_widens_a_principals_permissions(
    world: tuple[Bastion, str], sequence: list[int], method: str
) -> None:
    system, other_key = world
    me = Context(Principal(id=LOW, type=PrincipalType.SERVICE, auth_method=method))
    before = allowed(system, me)
    assert before == {"audit.read:audit_log:main"}
    candidates = moves(system, me, other_key)
    for index in sequence:
        with contextlib.suppress(BastionError):  # refused is expected; what matters is the state afterwards
            candidates[index]()
        assert allowed(system, me) == before
    # and nothing was minted for the low principal behind our back
    with system.database.read() as session:
        assert (
            session.execute(
                select(func.count()).select_from(ApiKey).where(ApiKey.principal_id == LOW)
            ).scalar()
            == 0
        )
        bindings = session.scalars(select(RoleBinding.role).where(RoleBinding.principal_id == LOW)).all()
        assert bindings == ["auditor"]  # and no role was given to it, by any route


HTTP_MOVES: list[tuple[str, str, dict[str, object] | None]] = [
    ("post", f"/v1/principals/{LOW}/roles", {"role": "security-admin"}),
    ("post", f"/v1/principals/{LOW}/apikeys", {}),
    ("post", f"/v1/principals/{OTHER}/apikeys", {}),
    ("post", "/v1/groups/group:admins/members", {"member_id": LOW}),
    ("post", "/v1/principals", {"id": "service:sock-puppet"}),
    ("post", "/v1/policies", {"text": WIDE_OPEN}),
    ("post", "/v1/policies/1/activate", None),
    ("post", "/v1/elevations", {"role": "security-admin", "reason": "r", "duration_minutes": 5}),
    ("approve-own", "", None),
    ("post", "/oauth/token", None),
    ("post", f"/v1/principals/{OTHER}/disable", None),
]


@pytest.fixture(scope="module")
def http_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bastion, TestClient, str]]:
    root: Path = tmp_path_factory.mktemp("escalation-http")
    system = build(load_settings(overrides={"state_dir": root}))
    migrate(system.database)
    ops = operator_context()
    for principal in (LOW, OTHER, "group:admins"):
        system.identity.create_principal(ops, principal)
    system.identity.assign_role(ops, "group:admins", "security-admin")
    system.identity.assign_role(ops, LOW, "auditor", resource=Resource("audit_log", "main"))
    token = system.identity.create_api_key(ops, LOW).token
    with TestClient(system.api(), raise_server_exceptions=False) as client:
        yield system, client, token
    system.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=len(HTTP_MOVES) - 1), min_size=1, max_size=6))
def test_no_sequence_of_api_calls_widens_a_principals_permissions(
    http_world: tuple[Bastion, TestClient, str], sequence: list[int]
) -> None:
    system, client, token = http_world
    me = Context(Principal(id=LOW, type=PrincipalType.SERVICE, auth_method="api_key"))
    before = allowed(system, me)
    headers = {"authorization": f"Bearer {token}"}
    mine: list[str] = []
    for index in sequence:
        method, path, body = HTTP_MOVES[index]
        if method == "approve-own":
            for elevation_id in mine:
                response = client.post(f"/v1/elevations/{elevation_id}/approve", headers=headers)
                assert response.status_code == 403
            continue
        if path == "/oauth/token":
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": token,
                "subject_token_type": "urn:bastion:params:oauth:token-type:api-key",
                "scope": "identity.*",
            }
            response = client.post(path, data=form)
            if response.status_code == 200:  # a token, but never a wider one
                scoped = {"authorization": f"Bearer {response.json()['access_token']}"}
                assert (
                    client.post(
                        f"/v1/principals/{LOW}/roles", json={"role": "operator"}, headers=scoped
                    ).status_code
                    == 403
                )
            continue
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code < 500, response.text
        if path == "/v1/elevations":  # asking for an elevation is allowed; everything else here is refused
            mine.append(response.json()["id"])
        else:
            assert response.status_code in (403, 404), (path, response.status_code)
    assert allowed(system, me) == before
    with system.database.read() as session:
        roles = session.scalars(select(RoleBinding.role).where(RoleBinding.principal_id == LOW)).all()
        assert roles == ["auditor"]
        members = session.scalars(select(GroupMember.member_id)).all()
        assert LOW not in members

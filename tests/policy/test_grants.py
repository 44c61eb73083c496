"""The placeholder authorizer: deny by default, exact grants, no wildcards, no allow-all."""

from __future__ import annotations

import pytest

from bastion.policy import Grant, GrantAuthorizer, local_operator_grants
from bastion.spine import ANONYMOUS, Context, Principal, PrincipalType, Resource

ALICE = Principal(id="user:alice", type=PrincipalType.USER, auth_method="test")
AUDIT_LOG = Resource("audit_log", "main")


def test_empty_grant_list_denies_everything() -> None:
    decision = GrantAuthorizer([]).authorize(Context(ALICE), "audit.read", AUDIT_LOG)
    assert not decision.allowed
    assert decision.policy_ids == ()


def test_exact_grant_allows_and_names_itself() -> None:
    grant = Grant(id="g1", principal_id=ALICE.id, action="audit.read", resource_type="audit_log")
    decision = GrantAuthorizer([grant]).authorize(Context(ALICE), "audit.read", AUDIT_LOG)
    assert decision.allowed
    assert decision.policy_ids == ("g1",)


def test_anonymous_is_never_granted_even_if_named() -> None:
    grant = Grant(id="g1", principal_id="anonymous", action="audit.read", resource_type="audit_log")
    assert not GrantAuthorizer([grant]).authorize(Context(ANONYMOUS), "audit.read", AUDIT_LOG).allowed


@pytest.mark.parametrize(
    ("principal_id", "action", "resource_type"),
    [
        ("*", "audit.read", "audit_log"),
        ("user:alice", "audit.read", "*"),
        ("user:alice", "*", "audit_log"),
        ("", "audit.read", "audit_log"),
        ("user:alice", "audit", "audit_log"),
    ],
)
def test_wildcards_and_malformed_grants_cannot_be_made(
    principal_id: str, action: str, resource_type: str
) -> None:
    with pytest.raises(ValueError, match="grant"):
        Grant(id="g", principal_id=principal_id, action=action, resource_type=resource_type)


def test_local_operator_grants_are_explicit_and_scoped_to_the_operator() -> None:
    grants = local_operator_grants("operator:alice")
    assert grants
    assert all(grant.principal_id == "operator:alice" for grant in grants)
    authorizer = GrantAuthorizer(grants)
    operator = Principal(id="operator:alice", type=PrincipalType.OPERATOR, auth_method="local")
    other = Principal(id="operator:mallory", type=PrincipalType.OPERATOR, auth_method="local")
    assert authorizer.authorize(Context(operator), "audit.read", AUDIT_LOG).allowed
    assert not authorizer.authorize(Context(other), "audit.read", AUDIT_LOG).allowed
    assert not authorizer.authorize(Context(operator), "policy.edit", Resource("policy", "x")).allowed


def test_a_grant_scoped_to_one_resource_allows_only_that_resource() -> None:
    grant = Grant(
        id="g", principal_id=ALICE.id, action="keys.sign", resource_type="key", resource_id="signer"
    )
    authorizer = GrantAuthorizer([grant])
    assert authorizer.authorize(Context(ALICE), "keys.sign", Resource("key", "signer")).allowed
    assert not authorizer.authorize(Context(ALICE), "keys.sign", Resource("key", "other")).allowed
    with pytest.raises(ValueError, match="wildcards"):
        Grant(id="g", principal_id=ALICE.id, action="keys.sign", resource_type="key", resource_id="*")

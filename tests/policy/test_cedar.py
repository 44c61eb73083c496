"""The Cedar authorizer: least privilege, roles and their scopes, groups, expiry, ABAC, versioned custom
policies (validated, audited, rolled back), deciding policy ids, and failing closed."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest
from sqlalchemy import update

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.errors import InvalidInput, NotFound, PermissionDenied
from bastion.policy import ACTIONS, ROLES, CedarAuthorizer, PolicySource, RoleDirectory
from bastion.spine import Context, Principal, PrincipalType, Resource
from bastion.store.tables import PolicyVersion

KEY = Resource("key", "datasets")


def user(name: str, **attributes: Any) -> Principal:
    return Principal(
        id=f"user:{name}",
        type=PrincipalType.USER,
        auth_method="test",
        attributes=MappingProxyType(attributes),
    )


def allowed(system: Bastion, principal: Principal, action: str, resource: Resource, **ctx: Any) -> bool:
    return system.uow._authorizer.authorize(Context(principal, **ctx), action, resource).allowed


def test_a_new_principal_can_do_nothing_but_serve_itself(system: Bastion) -> None:
    system.identity.create_principal(operator_context(), "user:new")
    new = user("new")
    for action, resource_type in ACTIONS.items():
        resource = Resource(resource_type, "user:new" if resource_type == "principal" else "x")
        expected = action in ("identity.tokens.issue", "identity.elevations.request")
        assert allowed(system, new, action, resource) is expected, action


def test_roles_are_least_privilege_and_named_in_the_decision(system: Bastion) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, "user:ann")
    binding = system.identity.assign_role(ops, "user:ann", "auditor")
    decision = system.uow._authorizer.authorize(
        Context(user("ann")), "audit.read", Resource("audit_log", "main")
    )
    assert decision.allowed
    assert decision.policy_ids == ("role:auditor", binding)
    for action in ("audit.prune", "keys.decrypt", "policies.write", "identity.roles.assign"):
        assert not allowed(system, user("ann"), action, Resource(ACTIONS[action], "x"))
    # every shipped role names only actions the catalog knows
    assert all(action in ACTIONS for actions in ROLES.values() for action in actions)


def test_a_scoped_role_holds_on_its_resource_only(system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, "user:eve")
    system.identity.assign_role(
        ops, "user:eve", "ml-engineer", resource=KEY, expires_in=timedelta(minutes=30)
    )
    eve = user("eve")
    assert allowed(system, eve, "keys.encrypt", KEY)
    assert not allowed(system, eve, "keys.encrypt", Resource("key", "other"))
    clock.advance(timedelta(minutes=31))
    assert not allowed(system, eve, "keys.encrypt", KEY)  # expired, even while cached


def test_unassigning_takes_effect_within_the_cache_window(system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, "user:bo")
    binding = system.identity.assign_role(ops, "user:bo", "viewer")
    assert allowed(system, user("bo"), "keys.read", KEY)
    system.identity.unassign_role(ops, binding)
    clock.advance(timedelta(seconds=2))
    assert not allowed(system, user("bo"), "keys.read", KEY)
    with pytest.raises(NotFound):
        system.identity.unassign_role(ops, binding)


def test_group_roles_apply_to_members(system: Bastion) -> None:
    ops = operator_context()
    for principal in ("group:stewards", "user:dee", "user:outsider"):
        system.identity.create_principal(ops, principal)
    system.identity.assign_role(ops, "group:stewards", "data-steward")
    system.identity.add_member(ops, "group:stewards", "user:dee")
    assert allowed(system, user("dee"), "keys.mac", KEY)
    assert not allowed(system, user("outsider"), "keys.mac", KEY)
    with pytest.raises(InvalidInput):
        system.identity.create_api_key(ops, "group:stewards")
    system.identity.remove_member(ops, "group:stewards", "user:dee")
    with pytest.raises(NotFound):
        system.identity.remove_member(ops, "group:stewards", "user:dee")


def test_classification_needs_a_clearance_that_reaches_it(system: Bastion) -> None:
    restricted = Resource("key", "phi", attributes={"classification": "restricted"})
    internal = Resource("key", "logs", attributes={"classification": "internal"})
    cleared = user("hi", roles=("viewer",), clearance="restricted")
    low = user("lo", roles=("viewer",), clearance="internal")
    none = user("none", roles=("viewer",))
    assert allowed(system, cleared, "keys.read", restricted)
    assert not allowed(system, low, "keys.read", restricted)
    assert allowed(system, low, "keys.read", internal)
    assert not allowed(system, none, "keys.read", internal)  # no clearance at all: refused
    decision = system.uow._authorizer.authorize(Context(low), "keys.read", restricted)
    assert decision.policy_ids == ("default:forbid:clearance",)


def test_decisions_follow_every_attribute_of_a_caller_seen_before(system: Bastion) -> None:
    """The authorizer remembers the entities of a caller and resource it has seen: a change in any attribute
    they are built from — the caller's clearance or tags, the resource's classification — is a new decision,
    and an attribute that cannot be remembered (a list) is still decided."""
    restricted = Resource("key", "phi", attributes={"classification": "restricted"})
    internal = Resource("key", "phi", attributes={"classification": "internal"})
    for _ in range(2):  # the second round is answered from what the first remembered
        assert allowed(system, viewer(clearance="restricted"), "keys.read", restricted)
        assert not allowed(system, viewer(clearance="internal"), "keys.read", restricted)
        assert allowed(system, viewer(clearance="internal"), "keys.read", internal)
        assert not allowed(system, user("hi", clearance="restricted"), "keys.read", restricted)
        assert allowed(system, viewer(clearance=1), "keys.read", internal)
        assert not allowed(system, viewer(clearance=True), "keys.read", internal)  # not a clearance
        listed = viewer(clearance="internal", projects=["a", "b"])
        assert allowed(system, listed, "keys.read", internal)
        assert not allowed(system, listed, "keys.read", restricted)


def viewer(**attributes: Any) -> Principal:
    return user("hi", roles=("viewer",), **attributes)


def to_hour(clock: FrozenClock, hour: int) -> None:
    """Move the clock forward to the next HH:00 UTC."""
    now = clock.now()
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    clock.advance((target - now) % timedelta(days=1))


REGION_AND_HOURS = """
@id("eu-analysts")
permit(principal, action == Bastion::Action::"keys.decrypt", resource)
  when { principal.hasTag("team") && principal.getTag("team") == "analytics" &&
         resource has region && principal has region && principal.region == resource.region &&
         context.hour_utc >= 8 && context.hour_utc < 18 && context has purpose };
"""


def test_custom_policies_express_region_time_and_purpose(system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    info = system.policies.write(ops, REGION_AND_HOURS, comment="analysts decrypt in their region")
    assert info.policy_ids == ("eu-analysts",)
    system.policies.activate(ops, info.version)
    analyst = user("an", team="analytics", region="eu")
    eu_key = Resource("key", "eu-data", attributes={"region": "eu"})
    us_key = Resource("key", "us-data", attributes={"region": "us"})
    to_hour(clock, 10)
    assert allowed(system, analyst, "keys.decrypt", eu_key, purpose="fraud-review")
    assert not allowed(system, analyst, "keys.decrypt", eu_key)  # no declared purpose
    assert not allowed(system, analyst, "keys.decrypt", us_key, purpose="fraud-review")  # residency
    assert not allowed(system, user("x", team="sales", region="eu"), "keys.decrypt", eu_key, purpose="p")
    to_hour(clock, 22)
    assert not allowed(system, analyst, "keys.decrypt", eu_key, purpose="fraud-review")  # out of hours


def test_policy_versions_are_validated_audited_and_rolled_back(system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    reader = user("rd")
    grant = (
        '@id("rd-reads") permit(principal == Bastion::User::"user:rd", '
        'action == Bastion::Action::"keys.read", resource);'
    )
    first = system.policies.write(ops, grant)
    system.policies.activate(ops, first.version)
    assert allowed(system, reader, "keys.read", KEY)
    second = system.policies.write(ops, "")
    system.policies.activate(ops, second.version)
    assert not allowed(system, reader, "keys.read", KEY)
    system.policies.activate(ops, first.version)  # roll back
    assert allowed(system, reader, "keys.read", KEY)
    assert [(v.version, v.active) for v in system.policies.versions(ops)] == [(1, True), (2, False)]
    assert system.policies.text(ops) == (1, grant)
    events = system.audit.search(ops, AuditFilter(action="policies.activate")).events
    assert [e.details["version"] for e in events] == [1, 2, 1]
    assert [e.details.get("previous_version") for e in events] == [0, 1, 2]
    writes = system.audit.search(ops, AuditFilter(action="policies.write")).events
    assert writes[0].details["policy_ids"] == ["rd-reads"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit(principal, action, resource);", "@id"),
        ('@id("a") permit(principal, action, resource) when { principal.nope == 1 };', "[a]"),
        ('@id("a") permit(principal, action == Bastion::Action::"no.such", resource);', "[a]"),
        ('@id("role:viewer") permit(principal, action, resource);', "reserved"),
        ('@id("default:x") forbid(principal, action, resource);', "reserved"),
        (
            '@id("a") permit(principal, action, resource); @id("a") permit(principal, action, resource);',
            "twice",
        ),
        ('@id("a") permit(principal == ?principal, action, resource);', "templates"),
        ('@id("a") permit(principal, action, resourc);', "parse"),
        ("x" * (256 * 1024 + 1), "KiB"),
    ],
)
def test_invalid_policies_are_refused_and_nothing_is_stored(system: Bastion, text: str, message: str) -> None:
    ops = operator_context()
    with pytest.raises(InvalidInput, match=message if message != "[a]" else r"\[a\]"):
        system.policies.write(ops, text)
    assert system.policies.versions(ops) == []


def test_only_policy_admins_change_policies(system: Bastion) -> None:
    auditor = Context(user("aud", roles=("auditor",)))
    admin = Context(user("adm", roles=("security-admin",)))
    with pytest.raises(PermissionDenied):
        system.policies.write(auditor, "")
    assert system.policies.versions(auditor) == []  # but may read them
    info = system.policies.write(admin, "")
    system.policies.activate(admin, info.version)


def test_unknown_actions_and_resource_types_are_denied(system: Bastion) -> None:
    operator = operator_context().principal
    authorizer = system.uow._authorizer
    unknown_action = authorizer.authorize(Context(operator), "keys.exfiltrate", KEY)
    assert not unknown_action.allowed
    assert "not an action on" in unknown_action.reason
    # an action on the wrong type of resource, or an action group used as an action, is refused too
    assert not authorizer.authorize(Context(operator), "keys.read", Resource("secret", "s")).allowed
    assert not authorizer.authorize(Context(operator), "role:operator", KEY).allowed
    assert not authorizer.authorize(Context(operator), "keys.read", Resource("widget", "w")).allowed


def test_a_stored_version_that_no_longer_compiles_fails_closed(system: Bastion, clock: FrozenClock) -> None:
    ops = operator_context()
    info = system.policies.write(
        ops, '@id("v") permit(principal in Bastion::Role::"viewer", action, resource);'
    )
    system.policies.activate(ops, info.version)
    with system.database.transaction() as session:  # as if an upgrade removed an action it names
        session.execute(
            update(PolicyVersion).values(
                text='@id("v") permit(principal, action == Bastion::Action::"gone", resource);'
            )
        )
    system.uow._authorizer._source.invalidate()
    decision = system.uow._authorizer.authorize(Context(user("v", roles=("viewer",))), "keys.read", KEY)
    assert not decision.allowed
    assert "does not compile" in decision.reason
    assert allowed(system, ops.principal, "keys.read", KEY)  # the operator can still repair it
    system.policies.activate(ops, 0)
    assert allowed(system, user("v", roles=("viewer",)), "keys.read", KEY)


def test_custom_policies_can_name_a_roles_actions_as_a_group(system: Bastion) -> None:
    ops = operator_context()
    text = (
        '@id("contractor-views") permit(principal == Bastion::User::"user:contractor", '
        'action in Bastion::Action::"role:viewer", resource is Bastion::Key);'
    )
    system.policies.activate(ops, system.policies.write(ops, text).version)
    contractor = user("contractor")
    assert allowed(system, contractor, "keys.read", KEY)
    assert not allowed(system, contractor, "secrets.list", Resource("secret", "*"))  # viewer, not a key
    assert not allowed(system, contractor, "keys.decrypt", KEY)  # not a viewer action


def test_ready_tells_whether_a_decision_would_read_the_database(system: Bastion, clock: FrozenClock) -> None:
    """The gateway decides on its event loop only when ``ready``: otherwise the policy or roles are read on a
    thread. Ready is exactly: both the active policy and the caller's roles are cached and fresh."""
    source, directory = PolicySource(system.database, clock), RoleDirectory(system.database, clock)
    authorizer = CedarAuthorizer(source, directory, clock)
    ops = operator_context()
    system.identity.create_principal(ops, "user:cy")
    system.identity.assign_role(ops, "user:cy", "viewer")
    caller = Context(user("cy"))
    assert not authorizer.ready(caller)  # nothing read yet
    assert authorizer.authorize(caller, "keys.read", KEY).allowed
    assert authorizer.ready(caller)
    assert not authorizer.ready(Context(user("someone-else")))  # their roles are not cached
    clock.advance(timedelta(seconds=2))  # the TTL is over
    assert not authorizer.ready(caller)
    directory.membership("user:cy")
    assert not authorizer.ready(caller)  # the roles are fresh, the policy is not
    source.current()
    assert authorizer.ready(caller)

"""The Cedar authorizer: every decision in Bastion is made here.

Per request it builds the Cedar entities (the principal with the roles and groups that apply to *this*
resource now, and the resource with its attributes) and the context (authentication method, time, source,
purpose), and asks Cedar with the parsed policy set and schema. Deny by default: anything Cedar cannot decide
— an unknown action or resource type, a malformed attribute, an evaluation error — is a denial with a reason.

An API key or token with scopes only ever narrows: an action outside its scopes is refused before Cedar is
asked. Exchanging the credential for a token is the exception (the token endpoint keeps the token's scopes
within the credential's own; see ``scope_within``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import cedarpy

from bastion.core.clock import Clock
from bastion.policy.catalog import ACTIONS, RESOURCE_TYPES, Classification
from bastion.policy.directory import Binding, RoleDirectory
from bastion.policy.schema import NAMESPACE, action_groups
from bastion.policy.source import ActivePolicies, PolicySource
from bastion.spine.context import Context, Principal, PrincipalType, Resource
from bastion.spine.interfaces import Decision

# Actions a scoped credential may still perform on its own principal.
SCOPE_EXEMPT = frozenset({"identity.tokens.issue"})
_PRINCIPAL_ENTITY = {
    PrincipalType.USER: "User",
    PrincipalType.SERVICE: "Service",
    PrincipalType.OPERATOR: "Operator",
}
# Attributes the authenticators set; never taken from a principal's stored attributes (see identity).
RESERVED_ATTRIBUTES = frozenset(
    {"scopes", "roles", "groups", "api_key_id", "token_id", "break_glass", "account", "issuer"}
)
_TYPED_STRINGS = ("region", "department")
_MAX_ENTITY_CACHE = 4096
_MAX_DECISION_CACHE = 16_384


def scope_allows(scopes: tuple[str, ...], action: str) -> bool:
    return any(
        scope == action or (scope.endswith(".*") and action.startswith(scope[:-1])) for scope in scopes
    )


def scope_within(allowed: tuple[str, ...], scope: str) -> bool:
    """Whether ``scope`` (an action, or a namespace ``x.*``) asks for nothing beyond ``allowed``."""
    if scope.endswith(".*"):
        namespace = scope[:-1]  # "audit."
        return any(grant.endswith(".*") and namespace.startswith(grant[:-1]) for grant in allowed)
    return scope_allows(allowed, scope)


def classification_rank(value: Any) -> int:
    """A classification or clearance given by name ('confidential') or rank (2)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Classification(value).value
    return Classification[str(value).upper()].value


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


class CedarAuthorizer:
    def __init__(self, source: PolicySource, directory: RoleDirectory, clock: Clock) -> None:
        self._source, self._directory, self._clock = source, directory, clock
        self._entities: dict[str, cedarpy.Entities] = {}
        self._known: dict[tuple[Any, ...], tuple[str, cedarpy.Entities]] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        self._decided_under: ActivePolicies | None = None

    def ready(self, context: Context) -> bool:
        return self._source.ready() and self._directory.ready(context.principal.id)

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        principal = context.principal
        refusal = _precheck(principal, action, resource)
        if refusal is not None:
            return refusal
        active = self._source.current()
        if active.operator_only and principal.type is not PrincipalType.OPERATOR:
            return Decision(
                allowed=False, reason="the active policy version does not compile; only the operator may act"
            )
        now = self._clock.now()
        membership = self._directory.membership(principal.id)
        bindings = [b for b in membership.bindings if b.applies(resource, now)]
        roles = sorted({b.role for b in bindings} | set(principal.attributes.get("roles", ())))
        principal_type = _PRINCIPAL_ENTITY[principal.type]
        try:
            document, entities = self._entities_for(
                principal, principal_type, roles, membership.groups, action, resource
            )
        except (ValueError, KeyError) as error:
            return Decision(allowed=False, reason=f"the request's attributes are invalid: {error}")
        request_context = {
            "auth_method": principal.auth_method,
            "break_glass": bool(principal.attributes.get("break_glass", False)),
            "now": int(now.timestamp()),
            "hour_utc": now.hour,
            "weekday": now.isoweekday(),
            **({"source_address": context.source_address} if context.source_address else {}),
            **({"purpose": context.purpose} if context.purpose else {}),
            **({"destination_region": context.destination} if context.destination else {}),
        }
        # A Cedar decision is a pure function of the policy set, the entities and the request, and every
        # input is in this key (time to the second, as the context carries it): a hit is the same decision.
        if active is not self._decided_under:  # a new policy set: earlier decisions no longer hold
            self._decisions, self._decided_under = {}, active
        key = (document, action, tuple(sorted(request_context.items())), tuple(b.id for b in bindings))
        decision = self._decisions.get(key)
        if decision is None:
            request = {
                "principal": _uid(principal_type, principal.id),
                "action": {"type": f"{NAMESPACE}::Action", "id": action},
                "resource": _uid(RESOURCE_TYPES[resource.type], resource.id),
                "context": request_context,
            }
            # The schema is not passed again: the action is checked against the catalog (``_precheck``), the
            # context is built here, and the action's place in the groups comes with the entities.
            result = cedarpy.is_authorized(request, active.compiled.policies, entities)
            decision = _decision(result, bindings)
            if len(self._decisions) >= _MAX_DECISION_CACHE:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _entities_for(
        self,
        principal: Principal,
        principal_type: str,
        roles: list[str],
        groups: tuple[str, ...],
        action: str,
        resource: Resource,
    ) -> tuple[str, cedarpy.Entities]:
        # The document is built from these alone: a caller seen before skips building and serialising it.
        # (Attribute values that cannot be hashed — lists from a stored profile — take the long way.)
        known_as: tuple[Any, ...] = (
            principal_type,
            principal.id,
            _frozen(principal.attributes),
            tuple(roles),
            groups,
            action,
            resource.type,
            resource.id,
            _frozen(resource.attributes),
        )
        try:
            known, cacheable = self._known.get(known_as), True
        except TypeError:
            known, cacheable = None, False
        if known is not None:
            return known
        document = [
            _principal_entity(principal, principal_type, roles, groups),
            _action_entity(action),
            {
                "uid": _uid(RESOURCE_TYPES[resource.type], resource.id),
                "attrs": _resource_attributes(resource),
                "parents": [],
            },
        ]
        key = json.dumps(document, sort_keys=True)
        entities = self._entities.get(key)
        if entities is None:
            # The document is the cache key: the same principal acting on the same resource is parsed once.
            entities = cedarpy.Entities.from_json_str(key)
            if len(self._entities) >= _MAX_ENTITY_CACHE:
                self._entities.clear()
            self._entities[key] = entities
        if cacheable:
            if len(self._known) >= _MAX_ENTITY_CACHE:
                self._known.clear()
            self._known[known_as] = (key, entities)
        return key, entities


def _frozen(attributes: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...]:
    """Attributes as a key; each value with its type, as the entity tells ``True`` from ``1``."""
    return tuple(sorted((name, type(value), value) for name, value in attributes.items()))


@cache
def _action_entity(action: str) -> dict[str, Any]:
    """The action with the groups it belongs to (``role:auditor``, ...), as the schema declares them."""
    parents = [
        {"type": f"{NAMESPACE}::Action", "id": group}
        for group, actions in action_groups().items()
        if action in actions
    ]
    return {"uid": {"type": f"{NAMESPACE}::Action", "id": action}, "attrs": {}, "parents": parents}


def _principal_entity(
    principal: Principal, principal_type: str, roles: list[str], groups: tuple[str, ...]
) -> dict[str, Any]:
    attributes: Mapping[str, Any] = principal.attributes
    attrs: dict[str, Any] = {"account": {"__entity": _uid("Account", principal.id)}}
    if "clearance" in attributes:
        attrs["clearance"] = classification_rank(attributes["clearance"])
    attrs.update({name: str(attributes[name]) for name in _TYPED_STRINGS if name in attributes})
    tags = {
        name: value
        for name, value in attributes.items()
        if isinstance(value, str) and name not in RESERVED_ATTRIBUTES
    }
    parents = [_uid("Role", role) for role in roles] + [_uid("Group", group) for group in groups]
    return {"uid": _uid(principal_type, principal.id), "attrs": attrs, "parents": parents, "tags": tags}


def _resource_attributes(resource: Resource) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if "classification" in resource.attributes:
        attrs["classification"] = classification_rank(resource.attributes["classification"])
    if "region" in resource.attributes:
        attrs["region"] = str(resource.attributes["region"])
    if resource.attributes.get("owner"):
        attrs["owner"] = {"__entity": _uid("Account", str(resource.attributes["owner"]))}
    return attrs


def _precheck(principal: Principal, action: str, resource: Resource) -> Decision | None:
    """Refusals that need no policy: no principal, a credential scoped away from the action, an unknown
    resource type."""
    if principal.is_anonymous or principal.type not in _PRINCIPAL_ENTITY:
        return Decision(allowed=False, reason="unauthenticated")
    scopes = tuple(principal.attributes.get("scopes", ()))
    if scopes and action not in SCOPE_EXEMPT and not scope_allows(scopes, action):
        return Decision(allowed=False, reason="outside the credential's scopes")
    if resource.type not in RESOURCE_TYPES:
        return Decision(allowed=False, reason=f"unknown resource type {resource.type!r}")
    if ACTIONS.get(action) != resource.type:
        return Decision(allowed=False, reason=f"{action!r} is not an action on {resource.type!r} resources")
    return None


def _decision(result: cedarpy.AuthzResult, bindings: list[Binding]) -> Decision:
    names = result.diagnostics.id_annotations_by_reason
    policy_ids = tuple(names.get(reason, reason) for reason in result.diagnostics.reasons)
    if result.allowed:
        # Name the role bindings through which a deciding role policy applied.
        deciding_roles = {pid.removeprefix("role:") for pid in policy_ids if pid.startswith("role:")}
        via = tuple(b.id for b in bindings if b.role in deciding_roles)
        return Decision(allowed=True, reason="permitted by policy", policy_ids=policy_ids + via)
    if result.diagnostics.errors:
        errors = "; ".join(result.diagnostics.errors)[:500]
        return Decision(
            allowed=False, reason=f"policy evaluation failed (denied): {errors}", policy_ids=policy_ids
        )
    if policy_ids:
        return Decision(allowed=False, reason="forbidden by policy", policy_ids=policy_ids)
    return Decision(allowed=False, reason="no policy permits this action (deny by default)")

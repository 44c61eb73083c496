"""The Cedar schema for Bastion's entity types and actions, generated from the catalog.

Principals are users, service accounts and the local operator; each has an ``account`` (itself as the object
of identity actions), optional typed attributes for ABAC (clearance as a classification rank, region,
department) and every other string attribute as a Cedar tag. Groups and roles are their parents. Every
resource type carries the same optional attributes (classification, region, owner), so a policy can state
one condition across types.
"""

from __future__ import annotations

import json
from functools import cache

from bastion.policy.catalog import ACTIONS, LOCAL_OPERATOR_ACTIONS, RESOURCE_TYPES, ROLES

NAMESPACE = "Bastion"
PRINCIPAL_TYPES = ("User", "Service", "Operator")
LOCAL_OPERATOR_GROUP = "local-operator"
_RESOURCE_ATTRIBUTES = "{ classification?: Long, region?: String, owner?: Account }"


def action_uid(action: str) -> str:
    return f"{NAMESPACE}::Action::{json.dumps(action)}"


@cache
def schema_text() -> str:
    principals = ", ".join(PRINCIPAL_TYPES)
    lines = [
        f"namespace {NAMESPACE} {{",
        "  type RequestContext = {",
        "    auth_method: String, break_glass: Bool, now: Long, hour_utc: Long, weekday: Long,",
        "    source_address?: String, purpose?: String, destination_region?: String",
        "  };",
        "  entity Role;",
        "  entity Group in [Role];",
        *(
            f"  entity {kind} in [Group, Role] {{ account: Account, clearance?: Long, region?: String,"
            " department?: String } tags String;"
            for kind in PRINCIPAL_TYPES
        ),
        *(f"  entity {entity} {_RESOURCE_ATTRIBUTES};" for entity in sorted(set(RESOURCE_TYPES.values()))),
        *(f"  action {json.dumps(group)};" for group in action_groups()),
        *(
            f"  action {json.dumps(action)}{_member_of(action)} appliesTo {{ principal: [{principals}], "
            f"resource: [{RESOURCE_TYPES[resource_type]}], context: RequestContext }};"
            for action, resource_type in ACTIONS.items()
        ),
        "}",
    ]
    return "\n".join(lines) + "\n"


@cache
def action_groups() -> dict[str, frozenset[str]]:
    """Action groups: one per shipped role (``role:<name>``) and one for the local operator. Policies say
    ``action in Bastion::Action::"role:auditor"`` — one hierarchy lookup instead of a long set literal, and a
    name custom policies can use too."""
    groups = {f"role:{role}": frozenset(actions) for role, actions in ROLES.items()}
    groups[LOCAL_OPERATOR_GROUP] = frozenset(LOCAL_OPERATOR_ACTIONS)
    return groups


def _member_of(action: str) -> str:
    names = [json.dumps(group) for group, actions in action_groups().items() if action in actions]
    return f" in [{', '.join(names)}]" if names else ""

"""The shipped Cedar policy set: the roles, the local operator, Bastion's own jobs and the guard rails.

Least privilege: a principal with no role binding and no custom policy can do nothing but exchange its own
credential for a token and ask for an elevation. Every policy carries an ``@id`` so each decision names the
policies that made it. Ids starting ``role:`` or ``default:`` are reserved for this set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache

from bastion.policy.catalog import ROLES
from bastion.policy.schema import LOCAL_OPERATOR_GROUP, NAMESPACE, action_uid

RESERVED_ID_PREFIXES = ("role:", "default:")

# The key that signs audit checkpoints, the token-signing key, the API-key pepper and the secrets store's key:
# the system may use each of them for its one job, and nothing wider.
CHECKPOINT_KEY = "bastion/audit-checkpoint"
TOKEN_KEY = "bastion/token-signing"  # noqa: S105 - a key name
PEPPER_SECRET_NAME = "bastion/api-key-pepper"  # noqa: S105 - the name of a secret, not one
SECRETS_KEY_NAME = "bastion/secrets"
SYSTEM_PRINCIPAL_ID = "system:bastion"
MODEL_SIGNING_KEY = "bastion/model-signing"  # signs every accepted model version (OMS)
MODEL_ARCHIVE_KEY = "bastion/model-archive"  # re-encrypts archive copies of retired versions

_SYSTEM_SCOPED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Key", CHECKPOINT_KEY, ("keys.create", "keys.read", "keys.sign")),
    ("Key", TOKEN_KEY, ("keys.create", "keys.read", "keys.sign")),
    ("Secret", PEPPER_SECRET_NAME, ("secrets.read", "secrets.write", "secrets.list")),
    ("Key", SECRETS_KEY_NAME, ("keys.create", "keys.read", "keys.encrypt", "keys.decrypt")),
    ("Key", MODEL_SIGNING_KEY, ("keys.create", "keys.read", "keys.sign")),
    ("Key", MODEL_ARCHIVE_KEY, ("keys.create", "keys.read", "keys.encrypt", "keys.decrypt")),
)
# models.load: the gateway's workers; data.retention and data.subjects: the server's scheduled deletion of
# expired data and its alerts on overdue data-subject requests.
SYSTEM_ACTIONS = ("audit.checkpoint", "audit.export", "models.load", "data.retention", "data.subjects")
SYSTEM_OWNED_KEY_ACTIONS = ("keys.create", "keys.read", "keys.encrypt", "keys.decrypt", "keys.destroy")


def _actions(actions: Iterable[str]) -> str:
    return "[" + ", ".join(action_uid(action) for action in actions) + "]"


def _uid(entity_type: str, entity_id: str) -> str:
    return f"{NAMESPACE}::{entity_type}::{json.dumps(entity_id)}"


def _role_policies() -> list[str]:
    return [
        f'@id("role:{role}")\n'
        f"permit(principal in {_uid('Role', role)}, action in {action_uid(f'role:{role}')}, resource);"
        for role in ROLES
    ]


def _system_policies() -> list[str]:
    system = _uid("Service", SYSTEM_PRINCIPAL_ID)
    policies = [
        f'@id("default:system:jobs")\npermit(principal == {system}, action in {_actions(SYSTEM_ACTIONS)}, '
        "resource);"
    ]
    policies += [
        f"@id({json.dumps(f'default:system:{name}')})\n"
        f"permit(principal == {system}, action in {_actions(actions)}, resource == {_uid(kind, name)});"
        for kind, name, actions in _SYSTEM_SCOPED
    ]
    # Upstream credentials (bastion/upstream/...) the gateway injects into upstream requests — only those.
    policies.append(
        '@id("default:system:upstream-secrets")\n'
        f"permit(principal == {system}, action == {action_uid('secrets.read')},\n"
        f"       resource is {NAMESPACE}::Secret)\n"
        "  when { resource has owner && resource.owner == principal.account };"
    )
    # Keys Bastion owns (one per stored model version, destroyed to crypto-shred it) — and only those.
    policies.append(
        '@id("default:system:owned-keys")\n'
        f"permit(principal == {system}, action in {_actions(SYSTEM_OWNED_KEY_ACTIONS)}, "
        f"resource is {NAMESPACE}::Key)\n"
        "  when { resource has owner && resource.owner == principal.account };"
    )
    return policies


@cache
def default_policies() -> str:
    # Separation of duties: nobody approves their own elevation or model version, or vets what they imported.
    approve = _actions(
        ("identity.elevations.approve", "identity.elevations.deny", "models.approve", "models.vet")
    )
    policies = [
        *_role_policies(),
        '@id("default:local-operator")\n'
        f"permit(principal is {NAMESPACE}::Operator,\n"
        f"       action in {action_uid(LOCAL_OPERATOR_GROUP)}, resource);",
        *_system_policies(),
        # Exchanging one's own credential for a token; the token endpoint keeps the scopes within the
        # credential's own.
        '@id("default:self-service:tokens.issue")\n'
        f"permit(principal, action == {action_uid('identity.tokens.issue')}, resource)\n"
        "  when { resource == principal.account };",
        '@id("default:self-service:elevations.request")\n'
        f"permit(principal, action == {action_uid('identity.elevations.request')}, resource)\n"
        "  when { resource == principal.account };",
        # A requester may see and withdraw its own elevations.
        '@id("default:self-service:elevations")\n'
        "permit(principal, action in "
        f"{_actions(('identity.elevations.read', 'identity.elevations.revoke'))}, resource)\n"
        "  when { resource has owner && resource.owner == principal.account };",
        # Nobody approves their own elevation, whatever else a policy says (forbid overrides permit).
        '@id("default:forbid:self-approval")\n'
        f"forbid(principal, action in {approve}, resource)\n"
        "  when { resource has owner && resource.owner == principal.account };",
        # Nobody gives themselves a role or a key for another principal's worth: role changes on one's own
        # account go through an elevation that someone else approves.
        '@id("default:forbid:self-assignment")\n'
        f"forbid(principal, action == {action_uid('identity.roles.assign')}, resource)\n"
        f"  when {{ resource == principal.account }} unless {{ principal is {NAMESPACE}::Operator }};",
        # Classified resources need a clearance that reaches their classification. The local operator and
        # the system hold the state itself, so the rule would protect nothing from them.
        '@id("default:forbid:clearance")\n'
        "forbid(principal, action, resource)\n"
        "  when { resource has classification &&\n"
        "         !(principal has clearance && principal.clearance >= resource.classification) }\n"
        f"  unless {{ principal is {NAMESPACE}::Operator || principal == "
        f"{_uid('Service', SYSTEM_PRINCIPAL_ID)} }};",
    ]
    return "\n\n".join(policies) + "\n"

"""The grants shipped by default: what the local operator (the CLI on the server's own state) may do.

The list is explicit and short on purpose; each later capability adds the actions it introduces.
"""

from __future__ import annotations

from bastion.policy.grants import Grant

# (action, resource type)
LOCAL_OPERATOR_ACTIONS: tuple[tuple[str, str], ...] = (
    ("audit.read", "audit_log"),
    ("audit.verify", "audit_log"),
    ("audit.prove", "audit_log"),
    ("audit.checkpoint", "audit_log"),
    ("audit.export", "audit_log"),
    ("audit.prune", "audit_log"),
)
# Key management: the local operator administers and uses keys (resource type "key").
KEY_ACTIONS = (
    "create",
    "read",
    "rotate",
    "disable",
    "enable",
    "destroy",
    "encrypt",
    "decrypt",
    "rewrap",
    "sign",
    "verify",
    "mac",
)
LOCAL_OPERATOR_ACTIONS += tuple((f"keys.{action}", "key") for action in KEY_ACTIONS)

LOCAL_OPERATOR_ACTIONS += tuple(
    (f"secrets.{action}", "secret") for action in ("write", "read", "list", "delete")
)
LOCAL_OPERATOR_ACTIONS += (("backup.create", "state"), ("backup.restore", "state"))
LOCAL_OPERATOR_ACTIONS += (
    ("identity.principals.create", "principal"),
    ("identity.principals.read", "principal"),
    ("identity.principals.disable", "principal"),
    ("identity.principals.enable", "principal"),
    ("identity.grants.create", "principal"),
    ("identity.apikeys.create", "principal"),
    ("identity.apikeys.read", "api_key"),
    ("identity.apikeys.revoke", "api_key"),
    ("identity.tokens.revoke", "token"),
)

# What Bastion's own background jobs may do, and nothing more.
SYSTEM_ACTIONS: tuple[tuple[str, str], ...] = (
    ("audit.checkpoint", "audit_log"),
    ("audit.export", "audit_log"),
)


def _grants(role: str, principal_id: str, actions: tuple[tuple[str, str], ...]) -> list[Grant]:
    return [
        Grant(
            id=f"default:{role}:{action}",
            principal_id=principal_id,
            action=action,
            resource_type=resource_type,
        )
        for action, resource_type in actions
    ]


def local_operator_grants(principal_id: str) -> list[Grant]:
    return _grants("local-operator", principal_id, LOCAL_OPERATOR_ACTIONS)


# The key that signs audit checkpoints: the system may create it, read it and sign with it — that key only.
CHECKPOINT_KEY = "bastion/audit-checkpoint"


TOKEN_KEY = "bastion/token-signing"  # noqa: S105 - a key name
PEPPER_SECRET_NAME = "bastion/api-key-pepper"  # noqa: S105 - the name of a secret, not one
SECRETS_KEY_NAME = "bastion/secrets"
# Each (action, resource type, resource id) the system needs on one named resource, and nothing wider.
_SYSTEM_SCOPED: tuple[tuple[str, str, str], ...] = (
    *((f"keys.{action}", "key", CHECKPOINT_KEY) for action in ("create", "read", "sign")),
    *((f"keys.{action}", "key", TOKEN_KEY) for action in ("create", "read", "sign")),
    *((f"secrets.{action}", "secret", PEPPER_SECRET_NAME) for action in ("read", "write", "list")),
    *((f"keys.{action}", "key", SECRETS_KEY_NAME) for action in ("create", "read", "encrypt", "decrypt")),
)


def system_grants(principal_id: str) -> list[Grant]:
    scoped = [
        Grant(
            id=f"default:system:{action}:{resource_id}",
            principal_id=principal_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
        )
        for action, resource_type, resource_id in _SYSTEM_SCOPED
    ]
    return [*_grants("system", principal_id, SYSTEM_ACTIONS), *scoped]

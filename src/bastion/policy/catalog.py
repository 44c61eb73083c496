"""What Bastion's policies talk about: the resource types, the actions on them, and the shipped roles.

This catalog is data. The Cedar schema (``schema.py``) and the default policy set (``defaults.py``) are
generated from it, so an action exists for the policy engine exactly when it is listed here — a request for
an unlisted action fails schema validation and is denied. Each later capability adds its actions and, where
a shipped role should hold them, names them under that role.
"""

from __future__ import annotations

from enum import IntEnum

# Bastion's resource types (the ``Resource.type`` a service names) and their Cedar entity types.
RESOURCE_TYPES: dict[str, str] = {
    "audit_log": "AuditLog",
    "key": "Key",
    "secret": "Secret",
    "state": "State",
    "principal": "Account",  # a principal as the object of an action (its keys, roles, tokens)
    "api_key": "ApiKey",
    "token": "Token",
    "policy": "PolicyStore",
    "elevation": "Elevation",
    "model": "Model",  # a registered model; version-level actions name the version in their details
    "dataset": "Dataset",
    "llm": "LanguageModel",  # an upstream LLM route of the gateway (the model name a client asks for)
}

# The model registry. ``accept-unscannable`` is a policy hook, held by no role: a custom policy permitting it
# lets versions of a format the scanner cannot judge be accepted (per model, if the policy says so).
MODEL_ACTIONS = (
    "create", "read", "push", "import", "provenance", "evaluate", "download", "load", "approve", "vet",
    "promote", "quarantine", "retire", "gate", "accept-unscannable", "predict", "serving",
)  # fmt: skip
# Datasets. ``reidentify`` turns a pseudonym back into its value: data stewards only, every use audited.
# ``analyze`` runs the PII engine on text the caller sends (no stored data is read).
# ``query``: differentially private aggregates (within the consumer's budget); ``retention``: delete expired
# versions; ``subjects``: data-subject requests (access, erasure, rectification); ``transfer``: read or copy
# data into another region than the dataset's — granted by no role, only by an explicit Cedar rule.
# ``label``: write labels — the labeller role, bound to the dataset it labels.
DATA_ACTIONS = (
    "create", "read", "ingest", "export", "schema", "reidentify", "analyze", "query", "retention", "subjects",
    "transfer", "label",
)  # fmt: skip
_KEY_ACTIONS = ("create", "read", "rotate", "disable", "enable", "destroy")
_KEY_USES = ("encrypt", "decrypt", "rewrap", "sign", "verify", "mac")

# Every action and the resource type it applies to.
ACTIONS: dict[str, str] = {
    **{f"audit.{name}": "audit_log" for name in ("read", "verify", "prove", "checkpoint", "export", "prune")},
    **{f"keys.{name}": "key" for name in (*_KEY_ACTIONS, *_KEY_USES)},
    **{f"secrets.{name}": "secret" for name in ("write", "read", "list", "delete")},
    "backup.create": "state",
    "backup.restore": "state",
    "metrics.read": "state",
    "identity.principals.create": "principal",
    "identity.principals.read": "principal",
    "identity.principals.disable": "principal",
    "identity.principals.enable": "principal",
    "identity.roles.assign": "principal",
    "identity.roles.unassign": "principal",
    "identity.groups.manage": "principal",
    "identity.apikeys.create": "principal",
    "identity.apikeys.read": "api_key",
    "identity.apikeys.revoke": "api_key",
    "identity.tokens.issue": "principal",
    "identity.tokens.revoke": "token",
    "identity.elevations.request": "principal",
    "identity.elevations.read": "elevation",
    "identity.elevations.approve": "elevation",
    "identity.elevations.deny": "elevation",
    "identity.elevations.revoke": "elevation",
    "identity.breakglass.create": "principal",
    "identity.certs.issue": "principal",
    "policies.read": "policy",
    "policies.write": "policy",
    "policies.activate": "policy",
    **{f"models.{name}": "model" for name in MODEL_ACTIONS},
    **{f"data.{name}": "dataset" for name in DATA_ACTIONS},
    "llm.chat": "llm",
    "llm.embed": "llm",
}


class Classification(IntEnum):
    """Data classification, ordered: a principal's clearance must reach a resource's classification."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3


def _actions(prefix: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{name}" for name in names)


# The shipped roles: least privilege, each a named set of actions. A new principal holds none of them.
ROLES: dict[str, tuple[str, ...]] = {
    "viewer": (
        "identity.principals.read",
        "keys.read",
        "secrets.list",
        "policies.read",
        "models.read",
        "data.read",
    ),
    "auditor": (
        *_actions("audit", "read", "verify", "prove"),
        "metrics.read",
        "identity.principals.read",
        "identity.apikeys.read",
        "identity.elevations.read",
        "policies.read",
        "keys.read",
        "models.read",
        "data.read",
    ),
    "operator": (
        *_actions("keys", "create", "read", "rotate", "disable", "enable", *_KEY_USES),
        *_actions("secrets", "write", "read", "list"),
        *_actions("audit", "checkpoint", "export", "verify"),
        "backup.create",
        *_actions("models", "read", "load", "predict"),
        "metrics.read",
    ),
    "ml-engineer": (
        *_actions("keys", "read", "encrypt", "decrypt", "sign", "verify"),
        "secrets.list",
        *_actions("models", "create", "read", "push", "import", "provenance", "evaluate", "download", "load"),
        *_actions("models", "promote", "predict"),
        *_actions("llm", "chat", "embed"),
        *_actions("data", "read", "ingest", "export", "analyze"),
    ),
    # An application that calls models: predictions, nothing else.
    "inference-client": ("models.predict", "llm.chat", "llm.embed"),
    "data-steward": (
        *_actions("keys", "read", "encrypt", "decrypt", "mac", "rewrap"),
        "secrets.list",
        *_actions("data", *(a for a in DATA_ACTIONS if a not in ("transfer", "label"))),
    ),
    # Reads aggregates only, through differential privacy.
    "analyst": ("data.read", "data.query"),
    # Annotators: bind this role to the one dataset they label (a scoped role binding).
    "labeller": ("data.read", "data.label"),
    "approver": (
        "identity.elevations.read",
        "identity.elevations.approve",
        "identity.elevations.deny",
        "identity.elevations.revoke",
        "identity.principals.read",
        *_actions("models", "read", "approve", "vet"),
    ),
    "security-admin": (
        *_actions(
            "identity",
            "principals.create",
            "principals.read",
            "principals.disable",
            "principals.enable",
            "roles.assign",
            "roles.unassign",
            "groups.manage",
            "apikeys.create",
            "apikeys.read",
            "apikeys.revoke",
            "certs.issue",
            "tokens.revoke",
            "elevations.read",
            "elevations.revoke",
        ),
        *_actions("policies", "read", "write", "activate"),
        *_actions("keys", *_KEY_ACTIONS),
        *_actions("secrets", "list", "delete"),
        *_actions("audit", "read", "verify", "prove", "checkpoint", "export", "prune"),
        *_actions("models", "read", "quarantine", "retire", "gate", "serving"),
        "data.read",
        "metrics.read",
    ),
}

# What the local operator (whoever holds the server's state directory) may do: administer everything it
# could anyway reach on disk. Break-glass and restores stay with it.
LOCAL_OPERATOR_ACTIONS: tuple[str, ...] = tuple(
    action
    for action in ACTIONS
    if action not in ("identity.tokens.issue", "identity.elevations.request", "data.transfer", "data.label")
)

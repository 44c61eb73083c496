"""The grants shipped by default: what the local operator (the CLI on the server's own state) may do.

The list is explicit and short on purpose; each later capability adds the actions it introduces.
"""

from __future__ import annotations

from bastion.policy.grants import Grant

# (action, resource type)
LOCAL_OPERATOR_ACTIONS: tuple[tuple[str, str], ...] = (("audit.read", "audit_log"),)


def local_operator_grants(principal_id: str) -> list[Grant]:
    return [
        Grant(
            id=f"default:local-operator:{action}",
            principal_id=principal_id,
            action=action,
            resource_type=resource_type,
        )
        for action, resource_type in LOCAL_OPERATOR_ACTIONS
    ]

"""Deny-by-default authorization from an explicit list of grants."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Decision

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True, slots=True)
class Grant:
    """Allows ``principal_id`` to perform exactly ``action`` on resources of ``resource_type`` — or, with
    ``resource_id``, on that one resource only.

    No wildcards: every permission is spelled out, so a grant can never mean more than it says.
    """

    id: str
    principal_id: str
    action: str
    resource_type: str
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.action):
            raise ValueError(f"grant {self.id}: action must be a dotted name like 'audit.read'")
        if (
            not self.principal_id
            or "*" in self.principal_id
            or "*" in self.resource_type
            or (self.resource_id is not None and (not self.resource_id or "*" in self.resource_id))
        ):
            raise ValueError(
                f"grant {self.id}: grants name one principal and one resource type, no wildcards"
            )


class GrantAuthorizer:
    def __init__(self, grants: Iterable[Grant]) -> None:
        # (principal, action, type, id); id None = every resource of the type
        self._index: dict[tuple[str, str, str, str | None], str] = {}
        for grant in grants:
            self._index[(grant.principal_id, grant.action, grant.resource_type, grant.resource_id)] = grant.id

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        principal = context.principal
        if principal.is_anonymous:
            return Decision(allowed=False, reason="unauthenticated")
        grant_id = self._index.get((principal.id, action, resource.type, resource.id)) or self._index.get(
            (principal.id, action, resource.type, None)
        )
        if grant_id is None:
            return Decision(allowed=False, reason="no grant allows this action (deny by default)")
        return Decision(allowed=True, reason="granted", policy_ids=(grant_id,))

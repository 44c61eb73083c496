"""A stand-in authorizer for the spine's own tests: allows exactly the (principal, action, resource type)
triples it is given. The spine's guarantees do not depend on which authorizer decides; Bastion itself only
ever uses the Cedar authorizer (tests/policy)."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.spine import Context, Decision, Resource


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    principal_id: str
    action: str
    resource_type: str


class AllowList:
    def __init__(self, grants: tuple[Grant, ...]) -> None:
        self._grants = grants

    def ready(self, context: Context) -> bool:
        return True

    def authorize(self, context: Context, action: str, resource: Resource) -> Decision:
        if context.principal.is_anonymous:
            return Decision(allowed=False, reason="unauthenticated")
        for grant in self._grants:
            if (grant.principal_id, grant.action, grant.resource_type) == (
                context.principal.id,
                action,
                resource.type,
            ):
                return Decision(allowed=True, reason="granted", policy_ids=(grant.id,))
        return Decision(allowed=False, reason="no grant allows this action (deny by default)")

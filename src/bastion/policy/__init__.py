"""Security spine: authorization with Cedar.

``CedarAuthorizer`` makes every decision from the shipped policy set (``defaults``: roles, the local
operator, Bastion's own jobs, guard rails) plus the active custom policy version, and the roles each
principal holds. Deny by default; there is no allow-all authorizer, anywhere.
Stable API: ``CedarAuthorizer``, ``PolicySource``, ``RoleDirectory``, ``ROLES``, ``compile_policies``.
"""

from bastion.policy.authorizer import CedarAuthorizer, scope_allows, scope_within
from bastion.policy.catalog import ACTIONS, RESOURCE_TYPES, ROLES, Classification
from bastion.policy.compiler import CompiledPolicies, compile_policies
from bastion.policy.directory import RoleDirectory
from bastion.policy.source import PolicySource

__all__ = [
    "ACTIONS",
    "RESOURCE_TYPES",
    "ROLES",
    "CedarAuthorizer",
    "Classification",
    "CompiledPolicies",
    "PolicySource",
    "RoleDirectory",
    "compile_policies",
    "scope_allows",
    "scope_within",
]

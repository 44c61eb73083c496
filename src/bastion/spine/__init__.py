"""Security spine: every state-changing or data-revealing operation runs as

    authenticate -> authorize -> act -> audit   (the last three in one database transaction)

Stable API: ``Context``, ``Principal``, ``Resource``, ``UnitOfWork`` and the ``Authorizer``, ``AuditLog``
and ``Authenticator`` protocols that the policy, audit and identity packages implement.
"""

from bastion.spine.context import ANONYMOUS, SYSTEM, Context, Principal, PrincipalType, Resource
from bastion.spine.interfaces import (
    AuditLog,
    AuditRecord,
    AuditWriter,
    Authenticator,
    Authorizer,
    Credentials,
    Decision,
    Outcome,
)
from bastion.spine.uow import UnitOfWork, Work

__all__ = [
    "ANONYMOUS",
    "SYSTEM",
    "AuditLog",
    "AuditRecord",
    "AuditWriter",
    "Authenticator",
    "Authorizer",
    "Context",
    "Credentials",
    "Decision",
    "Outcome",
    "Principal",
    "PrincipalType",
    "Resource",
    "UnitOfWork",
    "Work",
]

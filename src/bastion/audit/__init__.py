"""Security spine: the audit log.

For now a plain append-only table (``PlainAuditLog``) guarded by database triggers and a secret filter;
the tamper-evident Merkle log replaces it behind the same ``bastion.spine.AuditLog`` protocol.
Stable API: ``PlainAuditLog``, ``AuditQueries``, ``AuditFilter``, ``EventView``.
"""

from bastion.audit.query import AuditFilter, AuditQueries, EventPage, EventView
from bastion.audit.canonical import SCHEMA_VERSION
from bastion.audit.log import MerkleAuditLog

__all__ = ["SCHEMA_VERSION", "AuditFilter", "AuditQueries", "EventPage", "EventView", "MerkleAuditLog"]

"""Security spine: the audit log.

For now a plain append-only table (``PlainAuditLog``) guarded by database triggers and a secret filter;
the tamper-evident Merkle log replaces it behind the same ``bastion.spine.AuditLog`` protocol.
Stable API: ``PlainAuditLog``, ``AuditQueries``, ``AuditFilter``, ``EventView``.
"""

from bastion.audit.query import AuditFilter, AuditQueries, EventPage, EventView
from bastion.audit.table import SCHEMA_VERSION, PlainAuditLog

__all__ = ["SCHEMA_VERSION", "AuditFilter", "AuditQueries", "EventPage", "EventView", "PlainAuditLog"]

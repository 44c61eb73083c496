"""Security spine: the tamper-evident audit log.

Events are leaves of an RFC 9162 Merkle tree, appended in the caller's transaction (``MerkleAuditLog``) or
by group commit (``GroupCommitWriter``); signed checkpoints go to a witness; ``AuditTrail`` proves and
verifies; ``AuditQueries`` searches. Stable API: the names in ``__all__``.
"""

from bastion.audit.canonical import SCHEMA_VERSION
from bastion.audit.checkpoints import CheckpointSigner, InMemorySigner, SignedCheckpoint
from bastion.audit.log import MerkleAuditLog
from bastion.audit.query import AuditFilter, AuditQueries, EventPage, EventView
from bastion.audit.trail import AuditTrail, ConsistencyProof, InclusionProof
from bastion.audit.verify import VerifyReport
from bastion.audit.witness import FileWitness, Witness, WitnessError
from bastion.audit.writer import GroupCommitWriter

__all__ = [
    "SCHEMA_VERSION",
    "AuditFilter",
    "AuditQueries",
    "AuditTrail",
    "CheckpointSigner",
    "ConsistencyProof",
    "EventPage",
    "EventView",
    "FileWitness",
    "GroupCommitWriter",
    "InMemorySigner",
    "InclusionProof",
    "MerkleAuditLog",
    "SignedCheckpoint",
    "VerifyReport",
    "Witness",
    "WitnessError",
]

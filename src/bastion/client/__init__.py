"""Interface: the Python SDK for remote administration over HTTPS.

Depends on nothing else in Bastion (an import-linter contract enforces it), so it can be vendored into
pipelines and verifiers without the server. Stable API: ``BastionClient``, ``BastionAPIError``.
"""

from bastion.client.http import BastionAPIError, BastionClient
from bastion.client.tlog import (
    Checkpoint,
    VerificationError,
    event_leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "BastionAPIError",
    "BastionClient",
    "Checkpoint",
    "VerificationError",
    "event_leaf_hash",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]

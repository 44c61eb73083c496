"""Interface: the Python SDK for remote administration over HTTPS.

Depends on nothing else in Bastion (an import-linter contract enforces it), so it can be vendored into
pipelines and verifiers without the server. Stable API: ``BastionClient``, ``BastionAPIError``.
"""

from bastion.client.http import BastionAPIError, BastionClient

__all__ = ["BastionAPIError", "BastionClient"]

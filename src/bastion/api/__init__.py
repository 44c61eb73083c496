"""Interface: the control-plane REST API. Every endpoint is a thin adapter over a service method.

Stable API: ``create_api`` and ``ApiServices``.
"""

from bastion.api.app import ApiServices, create_api

__all__ = ["ApiServices", "create_api"]

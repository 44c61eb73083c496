"""Security spine: identity — principals, API keys and the authenticator that verifies them.

Stable API: ``IdentityService``, ``ApiKeyAuthenticator``, ``IssuedKey``, ``PrincipalInfo``.
"""

from bastion.identity.authenticator import ApiKeyAuthenticator
from bastion.identity.service import IdentityService, IssuedKey, PrincipalInfo

__all__ = ["ApiKeyAuthenticator", "IdentityService", "IssuedKey", "PrincipalInfo"]

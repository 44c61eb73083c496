"""The request authenticator for bearer credentials: Bastion API keys (``bst_...``), Bastion access tokens,
and tokens of configured external OIDC issuers (told apart by their ``iss``, then verified with that issuer's
keys only). Nothing else is accepted, and every failure is the same ``InvalidCredentials``."""

from __future__ import annotations

from bastion.core.errors import InvalidCredentials
from bastion.identity.apikeys import PREFIX
from bastion.identity.authenticator import ApiKeyAuthenticator
from bastion.identity.jwt_authenticator import JwtAuthenticator
from bastion.identity.oidc import OidcAuthenticator, unverified_issuer
from bastion.spine.context import ANONYMOUS, Principal
from bastion.spine.interfaces import Credentials


class BearerAuthenticator:
    def __init__(
        self, api_keys: ApiKeyAuthenticator, tokens: JwtAuthenticator, oidc: OidcAuthenticator
    ) -> None:
        self.api_keys, self._tokens, self.oidc = api_keys, tokens, oidc

    def authenticate(self, credentials: Credentials | None) -> Principal:
        if credentials is None:
            return ANONYMOUS
        if credentials.scheme != "bearer":
            raise InvalidCredentials
        value = credentials.value.get_secret_value()
        if value.startswith(PREFIX + "_"):
            return self.api_keys.authenticate(credentials)
        if self.oidc.configured and self.oidc.accepts(unverified_issuer(value)):
            return self.oidc.authenticate_token(value)
        return self._tokens.authenticate_token(value)

    def authenticate_cached(self, credentials: Credentials | None) -> Principal | None:
        """A Bastion API key verified from the cache alone (see ``ApiKeyAuthenticator.authenticate_cached``);
        ``None`` for every other credential and every other outcome: ``authenticate`` decides those."""
        if credentials is None or credentials.scheme != "bearer":
            return None
        if not credentials.value.get_secret_value().startswith(PREFIX + "_"):
            return None
        return self.api_keys.authenticate_cached(credentials)

"""The request authenticator: Bastion API keys (``bst_...``) and Bastion access tokens, both as bearer
credentials. Nothing else is accepted, and every failure is the same ``InvalidCredentials``."""

from __future__ import annotations

from bastion.core.errors import InvalidCredentials
from bastion.identity.apikeys import PREFIX
from bastion.identity.authenticator import ApiKeyAuthenticator
from bastion.identity.jwt_authenticator import JwtAuthenticator
from bastion.spine.context import ANONYMOUS, Principal
from bastion.spine.interfaces import Credentials


class BearerAuthenticator:
    def __init__(self, api_keys: ApiKeyAuthenticator, tokens: JwtAuthenticator) -> None:
        self.api_keys, self._tokens = api_keys, tokens

    def authenticate(self, credentials: Credentials | None) -> Principal:
        if credentials is None:
            return ANONYMOUS
        if credentials.scheme != "bearer":
            raise InvalidCredentials
        value = credentials.value.get_secret_value()
        if value.startswith(PREFIX + "_"):
            return self.api_keys.authenticate(credentials)
        return self._tokens.authenticate_token(value)

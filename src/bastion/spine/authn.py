"""The authenticator used until the identity subsystem lands: it knows no credentials.

Requests without credentials are anonymous (and the deny-by-default authorizer refuses them everything);
requests *with* credentials are refused outright, because a credential nobody can verify must never be
treated as if it were absent.
"""

from __future__ import annotations

from bastion.core.errors import InvalidCredentials
from bastion.spine.context import ANONYMOUS, Principal
from bastion.spine.interfaces import Credentials


class NoCredentialsAuthenticator:
    def authenticate(self, credentials: Credentials | None) -> Principal:
        if credentials is not None:
            raise InvalidCredentials
        return ANONYMOUS

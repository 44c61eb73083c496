"""Verifies the credentials a request presents. For now: Bastion API keys (``Authorization: Bearer bst_...``).

Every failure — unknown id, wrong secret, revoked, expired, disabled principal, malformed — is the same
``InvalidCredentials``; the caller's audit record of the refusal is written by the interface. Secrets are
compared in constant time. Lookups are not cached, so a revocation applies to the very next request on every
replica.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from types import MappingProxyType

from sqlalchemy import update

from bastion.core.clock import Clock
from bastion.core.errors import InvalidCredentials
from bastion.identity import apikeys
from bastion.identity.pepper import Pepper
from bastion.spine.context import ANONYMOUS, Principal, PrincipalType
from bastion.spine.interfaces import Credentials
from bastion.store.database import Database
from bastion.store.tables import ApiKey, PrincipalRow

LAST_USED_RESOLUTION = timedelta(minutes=1)
# A hash to compare against when the key id is unknown, so both paths cost the same.
_DUMMY = bytes(32)


class ApiKeyAuthenticator:
    def __init__(self, database: Database, pepper: Pepper, clock: Clock) -> None:
        self._database, self._pepper, self._clock = database, pepper, clock

    def authenticate(self, credentials: Credentials | None) -> Principal:
        if credentials is None:
            return ANONYMOUS
        if credentials.scheme != "bearer":
            raise InvalidCredentials
        parsed = apikeys.parse(credentials.value.get_secret_value())
        if parsed is None:
            raise InvalidCredentials
        presented = apikeys.secret_hash(self._pepper.get(), parsed.key_id, parsed.secret)
        now = self._clock.now()
        with self._database.read() as session:
            key = session.get(ApiKey, parsed.key_id)
            valid = hmac.compare_digest(key.secret_hash if key else _DUMMY, presented)
            if (
                key is None
                or not valid
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                raise InvalidCredentials
            principal = session.get(PrincipalRow, key.principal_id)
            if principal is None or principal.disabled:
                raise InvalidCredentials
            principal_id, principal_type = principal.id, PrincipalType(principal.type)
            attributes = dict(principal.attributes)
            attributes["scopes"] = tuple(key.scopes)
            attributes["api_key_id"] = key.key_id
            stale = key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION
        if stale:  # at most one write per key per minute, outside the read snapshot
            with self._database.transaction() as session:
                session.execute(update(ApiKey).where(ApiKey.key_id == parsed.key_id).values(last_used_at=now))
        return Principal(
            id=principal_id,
            type=principal_type,
            auth_method="api_key",
            attributes=MappingProxyType(attributes),
        )

"""Verifies the credentials a request presents. For now: Bastion API keys (``Authorization: Bearer bst_...``).

Every failure — unknown id, wrong secret, revoked, expired, disabled principal, malformed — is the same
``InvalidCredentials``; the caller's audit record of the refusal is written by the interface. Secrets are
compared in constant time. Key records are cached for ``cache_seconds`` (2 s by default), so a revocation
reaches every replica within that time.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, select, update

from bastion.core.cache import Background, TtlCache
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
# A key that may be used (not revoked, its principal there and not disabled), with what verifying it needs.
_USABLE_KEY = (
    select(
        ApiKey.secret_hash,
        ApiKey.expires_at,
        ApiKey.scopes,
        ApiKey.break_glass,
        ApiKey.last_used_at,
        PrincipalRow.id,
        PrincipalRow.type,
        PrincipalRow.attributes,
    )
    .join(PrincipalRow, PrincipalRow.id == ApiKey.principal_id)
    .where(
        ApiKey.key_id == bindparam("key_id"),
        ApiKey.revoked_at.is_(None),
        PrincipalRow.disabled.is_(False),
    )
)


@dataclass(frozen=True, slots=True)
class _KeyRecord:
    secret_hash: bytes
    usable_until: datetime | None  # expiry; revoked keys are not cached at all
    principal_id: str
    principal_type: PrincipalType
    attributes: MappingProxyType[str, Any]
    last_used_at: datetime | None


class ApiKeyAuthenticator:
    """``cache_seconds`` bounds how long a revocation takes to reach this replica (the issue's "within
    seconds"); 0 disables the cache."""

    def __init__(
        self,
        database: Database,
        pepper: Pepper,
        clock: Clock,
        cache_seconds: float = 2.0,
        background: Background | None = None,
    ) -> None:
        self._database, self._pepper, self._clock = database, pepper, clock
        self._cache: TtlCache[str, _KeyRecord | None] = TtlCache(
            timedelta(seconds=cache_seconds), background=background
        )
        self._noting: set[str] = set()  # keys whose last use is being written
        self._lock = threading.Lock()

    def authenticate(self, credentials: Credentials | None) -> Principal:
        principal = self._verify(credentials, cached_only=False)
        assert principal is not None  # noqa: S101 - only a cache-only check leaves the answer open
        return principal

    def authenticate_cached(self, credentials: Credentials | None) -> Principal | None:
        """The principal when the key verifies from this replica's cache alone, with nothing to write (no
        record to load, no last-use to update): what a request served on the event loop may check without
        blocking. ``None`` for anything else — a key that does not verify too: ``authenticate`` decides
        that, and the caller audits its refusal."""
        try:
            return self._verify(credentials, cached_only=True)
        except InvalidCredentials:
            return None

    def _verify(self, credentials: Credentials | None, *, cached_only: bool) -> Principal | None:
        if credentials is None:
            return ANONYMOUS
        if credentials.scheme != "bearer":
            raise InvalidCredentials
        parsed = apikeys.parse(credentials.value.get_secret_value())
        if parsed is None:
            raise InvalidCredentials
        presented = apikeys.secret_hash(self._pepper.get(), parsed.key_id, parsed.secret)
        now = self._clock.now()
        if cached_only:
            cached = self._cache.fresh(parsed.key_id, now, partial(self._load, parsed.key_id))
            if cached is None:
                return None
            record = cached[0]
        else:
            record = self._record(parsed.key_id, now)
        valid = hmac.compare_digest(record.secret_hash if record else _DUMMY, presented)
        if record is None or not valid or (record.usable_until is not None and record.usable_until <= now):
            raise InvalidCredentials
        if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
            if cached_only:
                return None
            self._note_use(parsed.key_id, record, now)
        return Principal(
            id=record.principal_id,
            type=record.principal_type,
            auth_method="api_key",
            attributes=record.attributes,
        )

    def _note_use(self, key_id: str, record: _KeyRecord, now: datetime) -> None:
        """Write the key's last use (at most once a minute: the cached record says when it was). Callers
        arriving while one writes do not write it too. The cached record learns the new time but is not
        renewed: it was read earlier, and a revocation since must still reach this replica within the TTL of
        that read."""
        with self._lock:
            if key_id in self._noting:
                return
            self._noting.add(key_id)
        try:
            with self._database.transaction() as session:
                session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=now))
            self._cache.amend(key_id, record, replace(record, last_used_at=now))
        finally:
            with self._lock:
                self._noting.discard(key_id)

    def _record(self, key_id: str, now: datetime) -> _KeyRecord | None:
        return self._cache.get_or_load(key_id, now, lambda: self._load(key_id))

    def _load(self, key_id: str) -> _KeyRecord | None:
        """The key's record if it may be used: not revoked, its principal there and not disabled (one
        statement, reloaded every second or so while the key is in use)."""
        row = self._database.first_row(_USABLE_KEY, key_id=key_id)
        if row is None:
            return None
        secret_hash, expires_at, scopes, break_glass, last_used_at, principal_id, kind, known = row
        attributes = {**known, "scopes": tuple(scopes), "api_key_id": key_id}
        if break_glass:
            attributes["break_glass"] = True
        return _KeyRecord(
            secret_hash,
            expires_at,
            principal_id,
            PrincipalType(kind),
            MappingProxyType(attributes),
            last_used_at,
        )

"""A small time-bounded, size-bounded cache for the authentication and authorization paths.

Entries live ``ttl`` (so a revocation, a disabled principal or an unassigned role takes effect within it
on every replica) and the cache is emptied when it reaches ``max_entries`` (so keys an attacker makes up —
unknown key ids, random certificates — cannot grow it without bound). Negative results are cached too.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: timedelta, max_entries: int = 10_000) -> None:
        self._ttl, self._max = ttl, max_entries
        self._entries: dict[K, tuple[datetime, V]] = {}

    def get_or_load(self, key: K, now: datetime, load: Callable[[], V]) -> V:
        cached = self.fresh(key, now)
        if cached is not None:
            return cached[0]
        value = load()
        self.put(key, now, value)
        return value

    def fresh(self, key: K, now: datetime) -> tuple[V] | None:
        """The entry, when there is one still within its TTL (in a 1-tuple, since a cached value may be
        ``None``); else ``None`` — what ``get_or_load`` would return without loading."""
        cached = self._entries.get(key)
        return (cached[1],) if cached is not None and now - cached[0] < self._ttl else None

    def put(self, key: K, now: datetime, value: V) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (now, value)

    def forget(self, key: K) -> None:
        """Drop one entry (this replica's own change should not wait out the TTL)."""
        self._entries.pop(key, None)

"""A small time-bounded, size-bounded cache for the authentication and authorization paths.

Entries live ``ttl`` (so a revocation, a disabled principal or an unassigned role takes effect within it
on every replica) and the cache is emptied when it reaches ``max_entries`` (so keys an attacker makes up —
unknown key ids, random certificates — cannot grow it without bound). Negative results are cached too.

Given a ``background`` runner, an entry in use is reloaded behind the caller's back once it is past half its
TTL (at a random point between half and four fifths, so that entries loaded together are not reloaded
together), and under steady traffic no request finds it expired: without this, every TTL each entry expired
at once and the requests of that moment all loaded it again — a stall every two seconds on a busy gateway.
The bound holds: an entry is served only while younger than ``ttl``, and a reload is stamped with the time
it was asked for, before it read anything. A reload that fails leaves the entry to expire as it would have.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Background = Callable[[Callable[[], None]], None]
"""Runs a job on another thread and returns at once (``Offload.submit``)."""

RELOAD_AFTER = (0.5, 0.8)  # of the TTL: from the first, plus a random part of the difference
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    stamp: datetime  # when it was read (or asked for): it is served until stamp + TTL
    value: V
    reload_at: datetime


class TtlCache(Generic[K, V]):
    def __init__(
        self, ttl: timedelta, max_entries: int = 10_000, background: Background | None = None
    ) -> None:
        self._ttl, self._max, self._background = ttl, max_entries, background
        self._entries: dict[K, _Entry[V]] = {}
        self._reloading: set[K] = set()
        self._lock = threading.Lock()

    def get_or_load(self, key: K, now: datetime, load: Callable[[], V]) -> V:
        cached = self.fresh(key, now, load)
        if cached is not None:
            return cached[0]
        value = load()
        self.put(key, now, value)
        return value

    def fresh(self, key: K, now: datetime, reload: Callable[[], V] | None = None) -> tuple[V] | None:
        """The entry, when there is one still within its TTL (in a 1-tuple, since a cached value may be
        ``None``); else ``None`` — what ``get_or_load`` would return without loading. With ``reload``, an
        entry whose reload is due is reloaded in the background."""
        cached = self._entries.get(key)
        if cached is None or now - cached.stamp >= self._ttl:
            return None
        if reload is not None and now >= cached.reload_at and self._background is not None:
            self._reload_behind(key, cached, now, reload)
        return (cached.value,)

    def _reload_behind(self, key: K, seen: _Entry[V], now: datetime, reload: Callable[[], V]) -> None:
        assert self._background is not None  # noqa: S101 - checked by the caller
        with self._lock:
            if key in self._reloading:
                return
            self._reloading.add(key)

        def job() -> None:
            try:
                value = reload()
            except Exception as error:  # noqa: BLE001 - the entry expires as usual; the next use loads it
                log.warning("reloading a cached entry failed (%s); it expires as usual", type(error).__name__)
            else:
                with self._lock:
                    if self._entries.get(key) is seen:  # not replaced or forgotten meanwhile
                        self._entries[key] = self._entry(now, value)
            finally:
                with self._lock:
                    self._reloading.discard(key)

        self._background(job)

    def put(self, key: K, now: datetime, value: V) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = self._entry(now, value)

    def _entry(self, now: datetime, value: V) -> _Entry[V]:
        first, last = RELOAD_AFTER
        return _Entry(now, value, now + self._ttl * (first + (last - first) * random.random()))  # noqa: S311

    def forget(self, key: K) -> None:
        """Drop one entry (this replica's own change should not wait out the TTL)."""
        with self._lock:
            self._entries.pop(key, None)

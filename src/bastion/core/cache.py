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

Callers that find an entry missing or expired at the same moment load it once: the first loads, the others
wait for its value (a gateway back from a pause had each waiting request read the same rows again, tens of
loads at once holding the GIL against the event loop). With a ``KeepWarm`` as its background runner, the
cache also keeps fresh what was used lately without waiting for a use (see ``KeepWarm``).
"""

from __future__ import annotations

import logging
import random
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Background = Callable[[Callable[[], None]], None]
"""Runs a job on another thread and returns at once (``Offload.submit``)."""

RELOAD_AFTER = (0.5, 0.8)  # of the TTL: from the first, plus a random part of the difference
WAIT_FOR_LOAD_SECONDS = 30.0  # a caller waits this long for another's load of the same key, then loads itself
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    stamp: datetime  # when it was read (or asked for): it is served until stamp + TTL
    value: V
    reload_at: datetime


@dataclass(slots=True)
class _Load(Generic[V]):
    """One caller's load of a key, which callers arriving meanwhile wait for."""

    done: threading.Event = field(default_factory=threading.Event)
    value: tuple[V] | None = None  # set once loaded; None: the load failed (each waiter then loads itself)


class TtlCache(Generic[K, V]):
    def __init__(
        self, ttl: timedelta, max_entries: int = 10_000, background: Background | None = None
    ) -> None:
        self._ttl, self._max, self._background = ttl, max_entries, background
        self._entries: dict[K, _Entry[V]] = {}
        self._reloading: set[K] = set()
        self._loading: dict[K, _Load[V]] = {}
        # Kept warm (with a ``KeepWarm``): each key's last use and how to reload it, the latest use last.
        self._used: OrderedDict[K, tuple[datetime, Callable[[], V]]] | None = None
        self._lock = threading.Lock()
        if isinstance(background, KeepWarm) and background.watch(self):
            self._used = OrderedDict()

    def get_or_load(self, key: K, now: datetime, load: Callable[[], V]) -> V:
        cached = self.fresh(key, now, load)
        if cached is not None:
            return cached[0]
        with self._lock:
            other = self._loading.get(key)
            if other is None:
                mine = self._loading[key] = _Load()
        if other is not None:  # another caller is loading it: its value is as fresh as one read now
            if other.done.wait(WAIT_FOR_LOAD_SECONDS) and other.value is not None:
                return other.value[0]
            return self._load(key, now, load)
        try:
            value = self._load(key, now, load)
            mine.value = (value,)
            return value
        finally:
            with self._lock:
                del self._loading[key]
            mine.done.set()

    def _load(self, key: K, now: datetime, load: Callable[[], V]) -> V:
        value = load()
        self.put(key, now, value)
        self._use(key, now, load)
        return value

    def fresh(self, key: K, now: datetime, reload: Callable[[], V] | None = None) -> tuple[V] | None:
        """The entry, when there is one still within its TTL (in a 1-tuple, since a cached value may be
        ``None``); else ``None`` — what ``get_or_load`` would return without loading. With ``reload``, an
        entry whose reload is due is reloaded in the background."""
        cached = self._entries.get(key)
        if cached is None or now - cached.stamp >= self._ttl:
            return None
        if reload is not None:
            self._use(key, now, reload)
            if now >= cached.reload_at and self._background is not None:
                self._reload_behind(key, cached, now, reload)
        return (cached.value,)

    def _use(self, key: K, now: datetime, reload: Callable[[], V]) -> None:
        if self._used is not None:
            with self._lock:
                self._used[key] = (now, reload)
                self._used.move_to_end(key)

    def reload_used(self, now: datetime, within: timedelta, most: int) -> None:
        """Reload in the background, once due, the entries of the ``most`` keys used last, if used within
        ``within`` — whether or not anyone uses them meanwhile (``KeepWarm`` calls this)."""
        due: list[tuple[K, _Entry[V], Callable[[], V]]] = []
        with self._lock:
            if self._used is None:
                return
            while self._used and next(iter(self._used.values()))[0] < now - within:
                self._used.popitem(last=False)  # the oldest use first: unused that long, left to expire
            for key, (_, reload) in reversed(self._used.items()):
                if len(due) >= most:
                    break
                entry = self._entries.get(key)
                if entry is not None and now >= entry.reload_at:
                    due.append((key, entry, reload))
        for key, entry, reload in due:
            self._reload_behind(key, entry, now, reload)

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
                if self._used is not None:
                    self._used.clear()
            self._entries[key] = self._entry(now, value)

    def amend(self, key: K, old: V, new: V) -> None:
        """Replace ``old``, the value cached for ``key``, by ``new`` without renewing it: ``new`` is served no
        longer than ``old`` would have been. Nothing, if the entry holds another value by now (a reload read
        since is newer than ``old`` and whatever it was amended with)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.value is old:
                self._entries[key] = replace(entry, value=new)

    def _entry(self, now: datetime, value: V) -> _Entry[V]:
        first, last = RELOAD_AFTER
        return _Entry(now, value, now + self._ttl * (first + (last - first) * random.random()))  # noqa: S311

    def forget(self, key: K) -> None:
        """Drop one entry (this replica's own change should not wait out the TTL)."""
        with self._lock:
            self._entries.pop(key, None)
            if self._used is not None:
                self._used.pop(key, None)


class KeepWarm:
    """A background runner (``Background``: it hands jobs to ``run``) that also keeps the caches given it
    fresh between uses: every ``tick`` seconds, each cache's entries used within ``within`` are reloaded once
    due, as a use would have them — at most ``most`` keys a cache, the ones used last. A caller back after a
    pause shorter than ``within`` finds its key, principal, policy and model fresh, instead of waiting for
    each to be read again (several reads one after another on the first request, the requests behind it
    queued). The TTL is not stretched: an entry is still served only while younger than it. ``within`` 0:
    nothing is kept warm (reloads are asked for by uses only)."""

    def __init__(
        self,
        run: Background,
        now: Callable[[], datetime],
        within: timedelta,
        *,
        most: int = 256,
        tick: float = 0.25,
    ) -> None:
        self._run, self._now, self._within, self._most, self._tick = run, now, within, most, tick
        self._caches: weakref.WeakSet[TtlCache[Any, Any]] = weakref.WeakSet()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, job: Callable[[], None]) -> None:
        self._run(job)

    def watch(self, cache: TtlCache[Any, Any]) -> bool:
        """Keep ``cache`` warm from now on; ``False``: nothing is kept warm (``within`` is 0)."""
        if self._within <= timedelta(0):
            return False
        with self._lock:
            self._caches.add(cache)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="bastion-keep-warm", daemon=True)
                self._thread.start()
        return True

    def reload_used(self) -> None:
        """One tick: ask every cache for its due reloads."""
        now = self._now()
        with self._lock:
            caches = list(self._caches)
        for cache in caches:
            cache.reload_used(now, self._within, self._most)

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.reload_used()
            except Exception:  # a tick that fails is tried again next tick; uses still reload as before
                log.exception("keeping cache entries warm failed")

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

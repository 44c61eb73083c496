"""The bounded TTL cache behind the authentication and authorization paths."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bastion.core.cache import KeepWarm, TtlCache
from bastion.core.offload import Offload

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_values_expire_and_negatives_are_cached() -> None:
    loads: list[str] = []
    cache: TtlCache[str, str | None] = TtlCache(timedelta(seconds=2))

    def load() -> str | None:
        loads.append("x")
        return None

    assert cache.get_or_load("k", T0, load) is None
    assert cache.get_or_load("k", T0 + timedelta(seconds=1), load) is None
    assert len(loads) == 1  # a cached miss is still a hit
    cache.get_or_load("k", T0 + timedelta(seconds=2), load)
    assert len(loads) == 2  # expired after the ttl


def test_size_is_bounded() -> None:
    cache: TtlCache[int, int] = TtlCache(timedelta(minutes=1), max_entries=3)
    for key in range(10):
        cache.put(key, T0, key)
    assert len(cache._entries) <= 3


def test_fresh_tells_a_cached_none_from_a_miss_and_never_loads() -> None:
    cache: TtlCache[str, str | None] = TtlCache(timedelta(seconds=2))
    assert cache.fresh("k", T0) is None  # never loaded
    cache.put("k", T0, None)
    assert cache.fresh("k", T0 + timedelta(seconds=1)) == (None,)  # a cached negative is still an entry
    assert cache.fresh("k", T0 + timedelta(seconds=2)) is None  # expired: the caller must load
    cache.put("v", T0, "value")
    assert cache.fresh("v", T0) == ("value",)


class Deferred:
    """A background runner that holds jobs until the test runs them (another thread, in production)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def __call__(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()


def test_entries_loaded_together_are_reloaded_at_different_moments() -> None:
    background = Deferred()
    cache: TtlCache[int, int] = TtlCache(timedelta(seconds=2), background=background)
    for key in range(200):
        cache.put(key, T0, key)
    due = []
    for tenth in range(10, 17):  # from half the TTL to four fifths of it
        background.jobs.clear()
        for key in range(200):
            cache.fresh(key, T0 + timedelta(seconds=tenth / 10), lambda: 0)
        due.append(len(background.jobs))  # asked for, not run: each stays in flight
    assert due[0] < 200 and due[-1] == 200 - sum(due[:-1])
    assert sum(1 for count in due if count) >= 4  # spread over the window


def test_an_entry_in_use_is_reloaded_behind_its_users_once_half_its_ttl_is_gone() -> None:
    background = Deferred()
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2), background=background)
    versions = iter(range(1, 100))
    assert cache.get_or_load("k", T0, lambda: next(versions)) == 1
    assert cache.fresh("k", T0 + timedelta(seconds=0.9), lambda: next(versions)) == (1,)
    assert background.jobs == []  # young: nothing to do
    later = T0 + timedelta(seconds=1.7)  # past four fifths of the TTL: the reload is due
    assert cache.fresh("k", later, lambda: next(versions)) == (1,)  # served at once, reloaded behind
    assert cache.fresh("k", later, lambda: next(versions)) == (1,)
    assert len(background.jobs) == 1  # one reload in flight per entry
    background.run()
    # The reload is stamped with the time it was asked for: it lives until then + TTL, no longer.
    assert cache.fresh("k", later + timedelta(seconds=0.5)) == (2,)
    assert cache.fresh("k", later + timedelta(seconds=2)) is None
    assert cache.get_or_load("k", later + timedelta(seconds=1.7), lambda: next(versions)) == 2  # and again
    background.run()
    assert cache.fresh("k", later + timedelta(seconds=1.7)) == (3,)


def test_an_expired_entry_is_never_served_while_its_reload_is_pending() -> None:
    background = Deferred()
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2), background=background)
    cache.put("k", T0, 1)
    assert cache.fresh("k", T0 + timedelta(seconds=1.7), lambda: 2) == (1,)
    assert background.jobs
    assert cache.fresh("k", T0 + timedelta(seconds=2)) is None  # the bound holds: the caller must load


def test_a_reload_never_overwrites_an_entry_forgotten_or_replaced_meanwhile() -> None:
    background = Deferred()
    cache: TtlCache[str, str] = TtlCache(timedelta(seconds=2), background=background)
    cache.put("revoked", T0, "valid")
    cache.put("changed", T0, "old")
    at = T0 + timedelta(seconds=1.7)
    cache.fresh("revoked", at, lambda: "valid (read before the revocation)")
    cache.fresh("changed", at, lambda: "older")
    cache.forget("revoked")  # this replica revoked it while the reload was reading
    cache.put("changed", at, "newest")
    background.run()
    assert cache.fresh("revoked", at) is None
    assert cache.fresh("changed", at) == ("newest",)


def test_a_reload_that_fails_leaves_the_entry_to_expire_as_usual() -> None:
    background = Deferred()
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2), background=background)
    cache.put("k", T0, 1)

    def unreachable() -> int:
        raise ConnectionError("database down")

    cache.fresh("k", T0 + timedelta(seconds=1.7), unreachable)
    background.run()
    assert cache.fresh("k", T0 + timedelta(seconds=1.9)) == (1,)
    assert cache.fresh("k", T0 + timedelta(seconds=2)) is None
    cache.put("k", T0 + timedelta(seconds=2), 5)
    cache.fresh("k", T0 + timedelta(seconds=3.7), lambda: 6)  # and a later reload is tried again
    background.run()
    assert cache.fresh("k", T0 + timedelta(seconds=3.7)) == (6,)


def test_callers_missing_the_same_key_at_once_load_it_once() -> None:
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2))
    release, loads = threading.Event(), []

    def slow_load() -> int:
        loads.append(1)
        release.wait(5)
        return 7

    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(cache.get_or_load, "k", T0, slow_load) for _ in range(8)]
        while not loads:
            time.sleep(0.001)
        time.sleep(0.05)  # the other seven are waiting for the first's load by now
        release.set()
        assert [answer.result(timeout=5) for answer in answers] == [7] * 8
    assert len(loads) == 1


def test_when_the_first_load_fails_the_callers_waiting_for_it_load_themselves() -> None:
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2))
    first_started, release = threading.Event(), threading.Event()

    def failing() -> int:
        first_started.set()
        release.wait(5)
        raise ConnectionError("database down")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_load, "k", T0, failing)
        first_started.wait(5)
        second = pool.submit(cache.get_or_load, "k", T0, lambda: 9)
        time.sleep(0.05)
        release.set()
        with pytest.raises(ConnectionError):
            first.result(timeout=5)
        assert second.result(timeout=5) == 9


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_keep_warm_reloads_what_was_used_lately_without_a_use_and_lets_the_rest_expire() -> None:
    background, clock = Deferred(), Clock()
    warm = KeepWarm(background, clock, timedelta(seconds=60), most=2)
    cache: TtlCache[str, str] = TtlCache(timedelta(seconds=2), background=warm)
    reads: list[str] = []

    def loader(key: str) -> Callable[[], str]:
        def load() -> str:
            reads.append(key)
            return f"{key}@{clock.now:%S}"

        return load

    for key in ("old", "a", "b", "c"):
        if key != "old":
            clock.now = T0 + timedelta(seconds=61)
        cache.get_or_load(key, clock.now, loader(key))
    clock.now = T0 + timedelta(seconds=62)
    warm.reload_used()
    assert background.jobs == []  # nothing due yet (loaded a second ago)
    clock.now = T0 + timedelta(seconds=62.7)  # past four fifths of the TTL: every entry is due
    warm.reload_used()
    background.run()
    # The two keys used last were read again with no request; "a" is past ``most``, "old" unused for 62 s.
    assert reads[4:] == ["c", "b"]
    clock.now = T0 + timedelta(seconds=64)  # the first reads' TTL is over
    assert cache.fresh("c", clock.now) == ("c@02",)
    assert cache.fresh("a", clock.now) is None and cache.fresh("old", clock.now) is None
    clock.now = T0 + timedelta(seconds=200)  # and once unused for longer than ``within``, no more reloads
    warm.reload_used()
    assert background.jobs == []


def test_keep_warm_keeps_a_key_fresh_across_a_pause_longer_than_its_ttl() -> None:
    """With the real thread and the real clock: a pause of three TTLs and the entry is still fresh."""
    reloader = Offload(threads=1, name="test-reload")
    warm = KeepWarm(reloader.submit, lambda: datetime.now(UTC), timedelta(seconds=30), tick=0.02)
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=0.2), background=warm)
    reads = itertools.count()
    try:
        cache.get_or_load("k", datetime.now(UTC), lambda: next(reads))
        time.sleep(0.6)
        assert cache.fresh("k", datetime.now(UTC)) is not None
        assert next(reads) >= 3  # read again about every tenth of a second
    finally:
        warm.close()
        reloader.close()


def test_keep_warm_off_keeps_nothing() -> None:
    background = Deferred()
    warm = KeepWarm(background, lambda: T0 + timedelta(seconds=1.7), timedelta(0))
    cache: TtlCache[str, int] = TtlCache(timedelta(seconds=2), background=warm)
    cache.get_or_load("k", T0, lambda: 1)
    warm.reload_used()
    assert background.jobs == [] and warm._thread is None and cache._used is None


def test_an_amended_value_lives_no_longer_than_the_one_it_replaces() -> None:
    cache: TtlCache[str, str] = TtlCache(timedelta(seconds=2))
    read = "read at T0"
    cache.put("k", T0, read)
    cache.amend("k", read, "read at T0, amended at T0 + 1.5 s")
    assert cache.fresh("k", T0 + timedelta(seconds=1.5)) == ("read at T0, amended at T0 + 1.5 s",)
    assert cache.fresh("k", T0 + timedelta(seconds=2)) is None
    cache.amend("absent", "x", "y")
    assert cache.fresh("absent", T0) is None


def test_an_amendment_never_replaces_a_newer_reading() -> None:
    cache: TtlCache[str, str | None] = TtlCache(timedelta(seconds=2))
    read = "valid"
    cache.put("k", T0, read)
    cache.put("k", T0 + timedelta(seconds=1), None)  # read again meanwhile: revoked
    cache.amend("k", read, "valid, last used now")
    assert cache.fresh("k", T0 + timedelta(seconds=1)) == (None,)

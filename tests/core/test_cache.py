"""The bounded TTL cache behind the authentication and authorization paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bastion.core.cache import TtlCache

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

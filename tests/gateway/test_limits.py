"""Rate limits: token buckets spent all-or-nothing, in one process and — through Redis — across processes,
exactly; an unreachable Redis is an error the gateway turns into a refusal."""

from __future__ import annotations

import multiprocessing
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from bastion.gateway.limits import Bucket, LimiterUnavailable, LocalLimiter, RedisLimiter
from tests.services import REDIS_URL, require


def test_local_buckets_burst_then_refuse_and_spend_all_or_nothing() -> None:
    limiter = LocalLimiter()
    loose, tight = Bucket("loose", 0.001, 10), Bucket("tight", 0.001, 2)
    assert [limiter.take([loose, tight]) == 0 for _ in range(3)] == [True, True, False]
    assert limiter.take([loose]) == 0  # the refused request spent nothing from "loose"
    assert [limiter.take([loose]) == 0 for _ in range(8)] == [True] * 7 + [False]
    assert limiter.take([Bucket("units", 1, 100, cost=150)]) > 0  # a batch larger than the quota can ever be


def _hammer(url: str, key: str, attempts: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = RedisLimiter(url, timeout_s=2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        granted = sum(pool.map(lambda _: limiter.take([Bucket(key, 0.0001, 300)]) == 0, range(attempts)))
    results.put(granted)


def test_three_processes_share_one_exact_limit_through_redis() -> None:
    require("redis", REDIS_URL, 6379)
    key = f"test:{secrets.token_hex(6)}"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(REDIS_URL, key, 200, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    granted = sum(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert granted == 300  # 600 attempts against a burst of 300 (and a negligible refill): exactly 300 pass


def test_redis_buckets_all_or_nothing() -> None:
    require("redis", REDIS_URL, 6379)
    limiter = RedisLimiter(REDIS_URL)
    key = secrets.token_hex(6)
    loose, tight = Bucket(f"{key}:loose", 0.0001, 5), Bucket(f"{key}:tight", 0.0001, 1)
    assert limiter.take([loose, tight]) == 0
    assert limiter.take([loose, tight]) > 0
    assert [limiter.take([loose]) == 0 for _ in range(5)] == [True] * 4 + [False]


def test_unreachable_redis_raises() -> None:
    with pytest.raises(LimiterUnavailable):
        RedisLimiter("redis://127.0.0.1:1/0", timeout_s=0.1).take([Bucket("k", 1, 1)])


def test_redis_limiter_survives_a_flushed_script_cache_and_a_dropped_connection() -> None:
    """The script is sent whole when the server has forgotten it; an idle connection the server closed is
    replaced at once, and a Redis that cannot be reached at all refuses (fail closed)."""
    require("redis", REDIS_URL, 6379)
    import redis  # noqa: PLC0415 - the test's own admin connection

    admin = redis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL)
    key = secrets.token_hex(6)
    assert limiter.take([Bucket(key, 0.0001, 3)]) == 0
    admin.script_flush()
    assert limiter.take([Bucket(key, 0.0001, 3)]) == 0  # NOSCRIPT: sent whole, still exact
    killed = 0
    for client in admin.client_list():  # the limiter's connection is closed by the server
        if client.get("cmd", "").startswith("eval"):
            killed += admin.client_kill_filter(_id=client["id"])
    assert killed >= 1
    assert limiter.take([Bucket(key, 0.0001, 3)]) == 0  # the idle connection was dead: a new one served
    assert limiter.take([Bucket(key, 0.0001, 3)]) > 0  # exactly three spent in all

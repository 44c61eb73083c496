"""Rate limits: token buckets spent all-or-nothing, in one process and — through Redis — across processes,
exactly; an unreachable Redis is an error the gateway turns into a refusal."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from bastion.gateway.limits import Bucket, Limiter, LimiterUnavailable, LocalLimiter, RedisLimiter
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


def test_async_spends_share_the_same_exact_buckets() -> None:
    """On an event loop: concurrent spends are exact, the local limiter answers the same as ``take``, and an
    unreachable Redis is refused."""
    require("redis", REDIS_URL, 6379)
    limiter = RedisLimiter(REDIS_URL, timeout_s=2)
    key = f"test:{secrets.token_hex(6)}"

    async def hammer() -> int:
        waits = await asyncio.gather(*(limiter.take_async([Bucket(key, 0.0001, 50)]) for _ in range(120)))
        await limiter.aclose()
        return sum(wait == 0 for wait in waits)

    assert asyncio.run(hammer()) == 50
    assert limiter.take([Bucket(key, 0.0001, 50)]) > 0  # the sync path sees the same buckets
    local = LocalLimiter()
    assert [asyncio.run(local.take_async([Bucket("k", 0.0001, 2)])) == 0 for _ in range(3)] == [
        True,
        True,
        False,
    ]
    with pytest.raises(LimiterUnavailable):
        asyncio.run(RedisLimiter("redis://127.0.0.1:1/0", timeout_s=0.1).take_async([Bucket("k", 1, 1)]))


def test_async_spends_of_one_loop_share_one_connection_opened_once() -> None:
    """Callers on one event loop pipeline their spends through one connection: a hundred arriving together
    before it exists open it once, and each still gets the answer to its own command."""
    require("redis", REDIS_URL, 6379)
    import redis  # noqa: PLC0415 - the test's own admin connection

    admin = redis.Redis.from_url(REDIS_URL)
    before = max(int(client["id"]) for client in admin.client_list())  # Redis numbers clients in order
    limiter = RedisLimiter(REDIS_URL, timeout_s=2)
    key = f"test:{secrets.token_hex(6)}"

    async def together() -> list[float]:
        waits = await asyncio.gather(
            *(limiter.take_async([Bucket(key, 0.0001, 60, cost=1 + i % 2)]) for i in range(100))
        )
        opened = [c for c in admin.client_list() if int(c["id"]) > before and c["cmd"].startswith("eval")]
        assert len(opened) == 1
        await limiter.aclose()
        return waits

    waits = asyncio.run(together())
    # Spent in the order sent: costs 1, 2, 1, 2, ... from a burst of 60 — the first 40 fit exactly.
    assert [wait == 0 for wait in waits] == [True] * 40 + [False] * 60
    admin.close()


def test_an_error_redis_answers_is_refused_and_the_next_spend_served() -> None:
    """A bucket whose key holds something else (WRONGTYPE from the script) fails closed, on either path;
    the limiter goes on serving other buckets."""
    require("redis", REDIS_URL, 6379)
    import redis  # noqa: PLC0415 - the test's own admin connection

    admin = redis.Redis.from_url(REDIS_URL)
    key = secrets.token_hex(6)
    admin.set(f"bastion:rl:{key}:clobbered", "not a bucket", ex=60)
    before = max(int(client["id"]) for client in admin.client_list())
    limiter = RedisLimiter(REDIS_URL, timeout_s=2)
    clobbered, fine = Bucket(f"{key}:clobbered", 1, 5), Bucket(f"{key}:fine", 0.0001, 5)

    def opened() -> list[int]:
        return [
            int(c["id"]) for c in admin.client_list() if int(c["id"]) > before and c["cmd"] != "client|list"
        ]

    async def scenario() -> None:
        with pytest.raises(LimiterUnavailable):
            await limiter.take_async([fine, clobbered])
        first = opened()
        assert await limiter.take_async([fine]) == 0
        assert opened() == first and len(first) == 1  # an answer, even an error, keeps replies in order
        await limiter.aclose()

    asyncio.run(scenario())
    with pytest.raises(LimiterUnavailable):
        limiter.take([fine, clobbered])
    assert [limiter.take([fine]) == 0 for _ in range(5)] == [True] * 4 + [False]  # nothing spent when refused
    admin.close()


def test_async_spends_survive_a_flushed_script_a_dropped_connection_and_a_caller_gone_away() -> None:
    require("redis", REDIS_URL, 6379)
    import redis  # noqa: PLC0415 - the test's own admin connection

    admin = redis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, timeout_s=2)
    key = secrets.token_hex(6)
    full, empty = Bucket(f"{key}:full", 0.0001, 100), Bucket(f"{key}:empty", 0.0001, 1)

    async def scenario() -> None:
        assert await limiter.take_async([empty]) == 0  # now empty: every later spend from it waits
        admin.script_flush()
        assert await limiter.take_async([full]) == 0  # NOSCRIPT: sent whole
        killed = 0
        for client in admin.client_list():
            if client.get("cmd", "").startswith("eval"):
                killed += admin.client_kill_filter(_id=client["id"])
        assert killed >= 1
        assert await limiter.take_async([full]) == 0  # the idle connection was dead: a new one served
        # A caller cancelled mid-command: its connection must not hand its reply ("0") to the next caller.
        admin.execute_command("CLIENT", "PAUSE", 300, "ALL")  # the reply is held back past the cancel
        task = asyncio.ensure_future(limiter.take_async([full]))
        await asyncio.sleep(0.1)  # sent, and waiting for its reply
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await limiter.take_async([empty]) > 0
        # A Redis slower than the limiter's timeout is refused (fail closed), and that connection dropped:
        # its late reply ("0", granted) must not answer the next spend.
        impatient = RedisLimiter(REDIS_URL, timeout_s=0.1)
        assert await impatient.take_async([full]) == 0  # connected: the next spend reuses the connection
        admin.execute_command("CLIENT", "PAUSE", 400, "ALL")
        with pytest.raises(LimiterUnavailable):
            await impatient.take_async([full])
        await asyncio.sleep(0.5)  # the pause is over: the late reply has been sent
        assert await impatient.take_async([empty]) > 0
        await impatient.aclose()
        await limiter.aclose()
        admin.close()

    asyncio.run(scenario())


def owed_charges_go_below_zero(limiter: Limiter, key: str) -> None:
    """A charge for what was already used is spent whatever the bucket holds; the debt then refuses what
    the bucket would otherwise grant, for as long as it takes to refill."""
    quota = Bucket(key, 1.0, 10)  # ten units, one a second
    assert limiter.take([replace(quota, cost=8)]) == 0
    assert limiter.take([replace(quota, cost=20)]) > 0  # an ordinary spend is refused, and spends nothing
    assert limiter.take([replace(quota, cost=20, owed=True)]) == 0  # ~2 - 20: 18 owed
    wait = limiter.take([replace(quota, cost=1)])
    assert 17 < wait <= 19  # 1 - (-18) units at one a second
    assert limiter.take([replace(quota, cost=-30, owed=True)]) == 0  # a refund pays it back (up to the burst)
    assert limiter.take([replace(quota, cost=10)]) == 0


def test_owed_charges_go_below_zero_in_process() -> None:
    owed_charges_go_below_zero(LocalLimiter(), "owed")


def test_owed_charges_go_below_zero_in_redis() -> None:
    require("redis", REDIS_URL, 6379)
    owed_charges_go_below_zero(RedisLimiter(REDIS_URL), f"test:owed:{secrets.token_hex(6)}")

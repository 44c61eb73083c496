"""Rate limits and quotas: token buckets per principal x model, per model, and a daily unit quota per
principal x model — checked and spent together, atomically, or not at all.

``LocalLimiter`` is exact within one process (the embedded default). ``RedisLimiter`` keeps the buckets in
Redis and spends them in one Lua script, so every gateway replica shares one exact limit; if Redis cannot be
reached the limiter raises ``LimiterUnavailable`` and the gateway refuses (or, for a model whose policy says
so, serves and audits).
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    rate: float  # tokens per second
    burst: float  # capacity
    cost: float = 1  # what this request spends from it
    # Spent even when the bucket holds less — it goes below zero, a debt it refills out of before it grants
    # anything again — and never a reason to wait: a charge for what was already used (an upstream that
    # spent past its reservation), which cannot be refused after the fact.
    owed: bool = False


MAX_KEYS = 200_000


class LimiterUnavailable(Exception):
    pass


class Limiter(Protocol):
    name: str

    def take(self, buckets: list[Bucket]) -> float:
        """Spend each bucket's cost from it, all or none: 0 when spent, else the seconds to wait."""
        ...

    async def take_async(self, buckets: list[Bucket]) -> float:
        """``take`` on an event loop, which it never blocks."""
        ...


class LocalLimiter:
    name = "local"

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._now = time.monotonic

    def take(self, buckets: list[Bucket]) -> float:
        now = self._now()
        with self._lock:
            levels = []
            for bucket in buckets:
                tokens, at = self._state.get(bucket.key, (bucket.burst, now))
                levels.append(min(bucket.burst, tokens + (now - at) * bucket.rate))
            waits = [
                (b.cost - level) / b.rate
                for b, level in zip(buckets, levels, strict=True)
                if level < b.cost and not b.owed
            ]
            if waits:
                return max(waits)
            for bucket, level in zip(buckets, levels, strict=True):
                self._state[bucket.key] = (level - bucket.cost, now)
            if len(self._state) > MAX_KEYS:
                self._state.clear()  # bounded memory; forgetting only ever grants fresh bursts
            return 0.0

    async def take_async(self, buckets: list[Bucket]) -> float:
        return self.take(buckets)  # memory and a lock held for microseconds: nothing that blocks the loop


# All buckets checked first, then all spent: one script, so it runs atomically on the Redis server, with the
# server's clock (every replica agrees on the time).
_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local cost = tonumber(ARGV[4 * i - 1])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = level
  if level < cost and ARGV[4 * i] == '0' then
    wait = math.max(wait, (cost - level) / rate)
  end
end
if wait > 0 then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local left = levels[i] - tonumber(ARGV[4 * i - 1])
  redis.call('HSET', key, 'tokens', left, 'at', now)
  -- Kept until it would be full again (a debt included): forgotten then, it is what it would have been.
  redis.call('EXPIRE', key, math.ceil(math.max(0, burst - left) / rate) + 60)
end
return '0'
"""


MAX_ASYNC_CONNECTIONS = 32


class _LoopConnections:
    """One event loop's connections to Redis: the idle ones, and slots bounding how many there are."""

    def __init__(self) -> None:
        self.idle: list[Any] = []  # redis-py's connections are untyped
        self.slots = asyncio.Semaphore(MAX_ASYNC_CONNECTIONS)


class RedisLimiter:
    """Spends through connections of its own, each used by one caller at a time: ``EVALSHA`` sent and its
    reply read directly on the connection. The client's command layers (retries, events, instrumentation,
    the shared pool's locking) cost several times the round trip itself on the request path, and a limiter
    retries nothing: a failure is ``LimiterUnavailable`` at once, and the connection is dropped.
    ``take_async`` does the same over redis-py's asyncio connections, kept per event loop (a connection
    belongs to the loop that opened it): the loop serves other requests during the round trip."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "bastion:rl:", timeout_s: float = 0.25) -> None:
        import hiredis  # noqa: PLC0415 - only deployments that share limits need it
        import redis  # noqa: PLC0415
        import redis.asyncio  # noqa: PLC0415

        # Both used only to make connections with the URL's settings (TLS, credentials, database).
        timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        self._pool = redis.Redis.from_url(url, **timeouts).connection_pool
        # No socket timeout on the event loop's connections: redis-py enforces it on a send by running the
        # send as a task of its own (``wait_for``), which waits a turn of the loop — about a millisecond per
        # request on a busy gateway. ``take_async`` bounds the whole round trip with one ``asyncio.timeout``.
        # (``None`` said outright: redis-py's default is 5 s.)
        self._async_pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout_s
        )
        self._timeout = timeout_s
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = (
            weakref.WeakKeyDictionary()
        )
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._pack: Callable[..., bytes] = hiredis.pack_command
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()  # redis-py's connections are untyped
        self._prefix = prefix
        self._errors = (redis.RedisError, OSError, TimeoutError)
        self._no_script = redis.exceptions.NoScriptError
        # A closed connection is worth one retry; a timeout is not: a slow Redis is refused at once.
        self._connection_lost = redis.exceptions.ConnectionError

    def _command(self, buckets: list[Bucket]) -> tuple[list[str | float], bytes]:
        """The script's keys and arguments, and ``EVALSHA`` with them in the protocol's bytes — packed by
        hiredis, byte for byte what redis-py packs, in a fifth of the time."""
        keys = [self._prefix + b.key for b in buckets]
        operands: list[str | float] = [len(keys), *keys]
        for bucket in buckets:
            operands += [bucket.rate, bucket.burst, bucket.cost, "1" if bucket.owed else "0"]
        return operands, self._pack(("EVALSHA", self._sha, *operands))

    def take(self, buckets: list[Bucket]) -> float:
        operands, packed = self._command(buckets)
        try:
            connection, reused = self._idle.get_nowait(), True
        except queue.Empty:
            connection, reused = self._pool.make_connection(), False
        while True:
            try:
                result = self._run(connection, operands, packed)
                break
            except self._errors as error:
                connection.disconnect()
                if not (reused and isinstance(error, self._connection_lost)):
                    raise LimiterUnavailable(type(error).__name__) from None
                # An idle connection the server closed (a restart, an idle timeout): one try on a new one.
                # Should the closed one's script have run before its reply was lost, the buckets are spent
                # twice — a stricter limit for one request, never a looser one.
                connection, reused = self._pool.make_connection(), False
        self._idle.put(connection)
        return float(result)

    def _run(self, connection: Any, operands: list[str | float], packed: bytes) -> Any:
        connection.send_packed_command([packed])
        try:
            return connection.read_response()
        except self._no_script:  # the server does not know the script yet (or lost it): send it whole
            connection.send_command("EVAL", _SCRIPT, *operands)
            return connection.read_response()

    async def take_async(self, buckets: list[Bucket]) -> float:
        operands, packed = self._command(buckets)
        loop = asyncio.get_running_loop()
        mine = self._async.get(loop) or self._async.setdefault(loop, _LoopConnections())
        async with mine.slots:  # at most MAX_ASYNC_CONNECTIONS per loop; more callers wait their turn
            idle = mine.idle
            connection, reused = (idle.pop(), True) if idle else (self._async_connection(), False)
            while True:
                try:
                    async with asyncio.timeout(self._timeout):
                        result = await self._run_async(connection, operands, packed)
                    break
                except self._errors as error:
                    await connection.disconnect()
                    if not (reused and isinstance(error, self._connection_lost)):
                        raise LimiterUnavailable(type(error).__name__) from None
                    connection, reused = self._async_connection(), False  # as in ``take``
                except BaseException:  # the caller went away mid-command: its reply would reach the next one
                    await asyncio.shield(connection.disconnect())
                    raise
            idle.append(connection)
        return float(result)

    async def aclose(self) -> None:
        """Close this event loop's connections (before the loop itself closes)."""
        mine = self._async.pop(asyncio.get_running_loop(), None)
        for connection in mine.idle if mine else ():
            await connection.disconnect()

    def _async_connection(self) -> Any:
        return self._async_pool.make_connection()  # type: ignore[no-untyped-call]

    async def _run_async(self, connection: Any, operands: list[str | float], packed: bytes) -> Any:
        await connection.send_packed_command([packed])
        try:
            return await connection.read_response()
        except self._no_script:
            await connection.send_command("EVAL", _SCRIPT, *operands)
            return await connection.read_response()

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
from collections import deque
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


class _Pipe(asyncio.Protocol):
    """One event loop's connection to Redis, its commands pipelined: callers write their command at once
    and each waits for its own reply, which Redis sends in the order the commands came (so a caller that
    stopped waiting — cancelled — still has its reply read, and the next caller's is the next one). The
    connection is made by redis-py (TLS, credentials, database, protocol as the URL says); this protocol
    then takes over its transport."""

    def __init__(self, stream: asyncio.StreamWriter, reader: Any) -> None:
        # The stream is kept only so it is not collected: a stream writer collected closes its transport.
        self._stream, self.transport = stream, stream.transport
        self._reader = reader  # hiredis's parser (untyped)
        self._waiting: deque[asyncio.Future[Any]] = deque()

    @property
    def usable(self) -> bool:
        return not self.transport.is_closing()  # closed by either side (a lost connection is closed too)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self.transport.write(packed)
        return answer

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            while (reply := self._reader.gets()) is not False:
                answer = self._waiting.popleft()
                if not answer.done():  # else its caller stopped waiting: the reply is dropped
                    answer.set_result(reply)
        except Exception:  # noqa: BLE001 - not Redis's protocol, or a reply nobody asked for
            self.transport.abort()  # every caller waiting fails in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(ConnectionResetError("the connection to Redis was lost"))


class RedisLimiter:
    """``take`` spends through connections of its own, each used by one thread at a time: ``EVALSHA`` sent
    and its reply read directly on the connection. The client's command layers (retries, events,
    instrumentation, the shared pool's locking) cost several times the round trip itself on the request
    path, and a limiter retries nothing: a failure is ``LimiterUnavailable`` at once, and the connection is
    dropped (a connection found closed is tried once more, anew).
    ``take_async`` pipelines every caller on an event loop through one connection of that loop (``_Pipe``):
    a command is written at once and its caller waits for its own reply while the loop serves other
    requests — one write and a future per spend, where a client connection's stream reader, writer and
    timeout task cost about as much again as the round trip itself."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "bastion:rl:", timeout_s: float = 0.25) -> None:
        import hiredis  # noqa: PLC0415 - only deployments that share limits need it
        import redis  # noqa: PLC0415
        import redis.asyncio  # noqa: PLC0415

        # Both used only to make connections with the URL's settings (TLS, credentials, database).
        timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        self._pool = redis.Redis.from_url(url, **timeouts).connection_pool
        # Used to connect only (``_connect`` bounds that); each reply is then awaited for ``timeout_s``.
        self._async_pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout_s
        )
        self._timeout = timeout_s
        # A connection belongs to the loop that opened it: one per loop, and the one being opened.
        self._pipes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pipe] = weakref.WeakKeyDictionary()
        self._opening: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[_Pipe]] = (
            weakref.WeakKeyDictionary()
        )
        self._hiredis = hiredis
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
        pipe = self._pipes.get(loop)
        reused = pipe is not None and pipe.usable
        while True:
            try:
                if pipe is None or not pipe.usable:
                    pipe = await self._open(loop)
                result = await self._run_async(loop, pipe, operands, packed)
                break
            except (*self._errors, RedisReplyError) as error:
                if pipe is not None and not isinstance(error, RedisReplyError):  # (an answer keeps the order)
                    pipe.transport.abort()  # a slow Redis's late reply must answer nobody
                if not (reused and isinstance(error, ConnectionError)):
                    raise LimiterUnavailable(type(error).__name__) from None
                # The connection the server closed (a restart, an idle timeout): one try on a new one, as
                # in ``take``.
                pipe, reused = None, False
        return float(result)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Pipe:
        """This loop's pipe, connected anew: one connection however many callers find it missing at once."""
        opening = self._opening.get(loop)
        if opening is None:
            opening = self._opening[loop] = loop.create_task(self._connect(loop))
            opening.add_done_callback(lambda _: self._opening.pop(loop, None))
        return await asyncio.shield(opening)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Pipe:
        connection = self._async_pool.make_connection()  # type: ignore[no-untyped-call]
        async with asyncio.timeout(self._timeout):
            await connection.connect()  # redis-py: TLS, AUTH, SELECT, as the URL says
        # Taken over once connected: redis-py lets go of its stream (or it would close it when collected),
        # and the pipe keeps it (a stream writer collected closes its transport).
        writer, connection._writer, connection._reader = connection._writer, None, None
        reader = self._hiredis.Reader(replyError=RedisReplyError, protocolError=RedisProtocolError)
        pipe = _Pipe(writer, reader)
        writer.transport.set_protocol(pipe)
        self._pipes[loop] = pipe
        return pipe

    async def aclose(self) -> None:
        """Close this event loop's connection (before the loop itself closes)."""
        pipe = self._pipes.pop(asyncio.get_running_loop(), None)
        if pipe is not None:
            pipe.transport.close()

    async def _run_async(
        self, loop: asyncio.AbstractEventLoop, pipe: _Pipe, operands: list[str | float], packed: bytes
    ) -> Any:
        reply = await self._reply(loop, pipe.send(packed))
        if isinstance(reply, RedisReplyError) and str(reply).startswith("NOSCRIPT"):
            # The server does not know the script yet (or lost it): send it whole.
            reply = await self._reply(loop, pipe.send(self._pack(("EVAL", _SCRIPT, *operands))))
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    async def _reply(self, loop: asyncio.AbstractEventLoop, answer: asyncio.Future[Any]) -> Any:
        """The reply, or ``TimeoutError`` after the limiter's timeout (a timer, not a task: cheap)."""
        expiry = loop.call_later(self._timeout, _expire, answer)
        try:
            return await answer
        finally:
            expiry.cancel()


class RedisReplyError(Exception):
    """An error Redis answered (``ResponseError`` in redis-py's terms)."""


class RedisProtocolError(Exception):
    """Bytes that are not Redis's protocol."""


def _expire(answer: asyncio.Future[Any]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())

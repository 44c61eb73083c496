"""Rate limits and quotas: token buckets per principal x model, per model, and a daily unit quota per
principal x model — checked and spent together, atomically, or not at all.

``LocalLimiter`` is exact within one process (the embedded default). ``RedisLimiter`` keeps the buckets in
Redis and spends them in one Lua script, so every gateway replica shares one exact limit; if Redis cannot be
reached the limiter raises ``LimiterUnavailable`` and the gateway refuses (or, for a model whose policy says
so, serves and audits).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    rate: float  # tokens per second
    burst: float  # capacity
    cost: float = 1  # what this request spends from it


MAX_KEYS = 200_000


class LimiterUnavailable(Exception):
    pass


class Limiter(Protocol):
    name: str

    def take(self, buckets: list[Bucket]) -> float:
        """Spend each bucket's cost from it, all or none: 0 when spent, else the seconds to wait."""
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
                (b.cost - level) / b.rate for b, level in zip(buckets, levels, strict=True) if level < b.cost
            ]
            if waits:
                return max(waits)
            for bucket, level in zip(buckets, levels, strict=True):
                self._state[bucket.key] = (level - bucket.cost, now)
            if len(self._state) > MAX_KEYS:
                self._state.clear()  # bounded memory; forgetting only ever grants fresh bursts
            return 0.0


# All buckets checked first, then all spent: one script, so it runs atomically on the Redis server, with the
# server's clock (every replica agrees on the time).
_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = level
  if level < cost then
    wait = math.max(wait, (cost - level) / rate)
  end
end
if wait > 0 then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  redis.call('HSET', key, 'tokens', levels[i] - cost, 'at', now)
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
end
return '0'
"""


class RedisLimiter:
    name = "redis"

    def __init__(self, url: str, prefix: str = "bastion:rl:", timeout_s: float = 0.25) -> None:
        import redis  # noqa: PLC0415 - only deployments that share limits need it

        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._client.register_script(_SCRIPT)
        self._prefix = prefix
        self._errors = (redis.RedisError, OSError)

    def take(self, buckets: list[Bucket]) -> float:
        args: list[float] = []
        for bucket in buckets:
            args += [bucket.rate, bucket.burst, bucket.cost]
        try:
            result = self._script(keys=[self._prefix + b.key for b in buckets], args=args)
        except self._errors as error:
            raise LimiterUnavailable(type(error).__name__) from None
        return float(result)

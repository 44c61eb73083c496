"""An in-process token bucket per key (a principal, a principal and a model): ``rate`` tokens a minute, up to
``burst`` saved. Exact within one process; the gateway's shared limits across replicas use Redis."""

from __future__ import annotations

import threading

from bastion.core.clock import Clock
from bastion.core.errors import RateLimited

MAX_KEYS = 100_000


class TokenBuckets:
    def __init__(self, rate_per_minute: float, burst: int, clock: Clock) -> None:
        self._rate, self._burst, self._clock = rate_per_minute / 60.0, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, what: str = "requests") -> None:
        """Spend one token or raise ``RateLimited`` with the seconds until one is there."""
        now = self._clock.now().timestamp()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - at) * self._rate)
            if tokens < 1:
                wait = (1 - tokens) / self._rate if self._rate else 3600.0
                self._buckets[key] = (tokens, now)
                raise RateLimited(
                    f"Too many {what}; try again in {wait:.0f} s.", retry_after=max(1, round(wait))
                )
            if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
                self._buckets.clear()  # bounded memory; forgetting buckets only ever grants a fresh burst
            self._buckets[key] = (tokens - 1, now)

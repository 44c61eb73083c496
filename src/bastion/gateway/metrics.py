"""Prometheus metrics of the gateway, in a registry of its own (served at ``/metrics``, authenticated)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

MAX_CACHED_SERIES = 10_000


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bastion_predict_requests", "Prediction requests", ["model", "principal", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.rejections = Counter(
            "bastion_predict_rejections",
            "Refused predictions by reason",
            ["model", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_predict_latency_seconds", "Prediction latency, end to end in the gateway", ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )  # fmt: skip

        # The labelled series of served predictions, per (model, principal): prometheus-client checks and
        # looks up label values under a lock on every ``labels`` call, which a prediction need not repeat.
        self._served: dict[tuple[str, str], tuple[Any, Any]] = {}

    def served(self, model: str, principal: str, seconds: float) -> None:
        """Count a prediction served and observe its latency."""
        series = self._served.get((model, principal))
        if series is None:
            series = (self.requests.labels(model, principal, "allowed"), self.latency.labels(model))
            if len(self._served) < MAX_CACHED_SERIES:  # principals an attacker makes up cannot grow it
                self._served[(model, principal)] = series
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

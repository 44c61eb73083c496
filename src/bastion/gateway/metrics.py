"""Prometheus metrics of the gateway, in a registry of its own (served at ``/metrics``, authenticated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)

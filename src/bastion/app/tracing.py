"""OpenTelemetry traces, built from settings by the composition root: off by default (a no-op tracer, which
costs next to nothing), or spans batched to an OTLP/HTTP collector, or printed to stdout for debugging.
Spans carry identifiers and decisions, never inputs, outputs or credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from bastion.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Tracing:
    tracer: trace.Tracer
    shutdown: Callable[[], None]  # flushes what is batched


def build_tracing(settings: Settings) -> Tracing:
    if settings.otel_exporter == "none":
        return Tracing(trace.NoOpTracer(), lambda: None)
    exporter: SpanExporter
    if settings.otel_exporter == "otlp":
        # Imported only when used: the exporter pulls in an HTTP client and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint, timeout=5)
    else:
        exporter = ConsoleSpanExporter()
    # A provider of our own rather than the process-global one: two systems in one process stay apart.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer("bastion"), provider.shutdown)

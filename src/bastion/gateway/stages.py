"""The pipeline's stages as they run: the current one is what a refusal names, and when tracing is on each
stage is an OpenTelemetry span under the request's span (joined to the caller's trace by ``traceparent``).
Spans carry names, ids and outcomes; never inputs, outputs or credentials."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context as TraceContext


class Stages:
    def __init__(self, tracer: trace.Tracer | None) -> None:
        self._tracer = tracer  # None: tracing is off, and stages cost nothing but a name
        self.current = "authorize"

    def request(self, parent: TraceContext | None, attributes: dict[str, Any]) -> AbstractContextManager[Any]:
        if self._tracer is None:
            return nullcontext()
        return self._tracer.start_as_current_span(
            "bastion.predict", context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        )

    def enter(self, name: str) -> AbstractContextManager[Any]:
        self.current = name
        if self._tracer is None:
            return nullcontext()
        return self._tracer.start_as_current_span(f"bastion.predict.{name}")

    def annotate(self, **attributes: Any) -> None:
        if self._tracer is not None:
            trace.get_current_span().set_attributes(attributes)

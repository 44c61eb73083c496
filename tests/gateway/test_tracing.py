"""OpenTelemetry traces of the prediction pipeline, exported over OTLP/HTTP to a real (local) receiver: one
span per request joined to the caller's ``traceparent``, a child span per stage, the refusing stage marked
as an error — and no inputs or credentials in any span."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bastion.app import Bastion
from bastion.core.clock import FrozenClock
from tests.gateway.conftest import auth, rebuilt

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
STAGES = ["authorize", "rate_limit", "model", "input", "invoke", "output", "audit"]


class Receiver:
    """An OTLP/HTTP traces endpoint: decodes each export request into plain span dictionaries."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            spans.append({
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "error": span.status.code == 2,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "events": [str(e) for e in span.events],
                            })  # fmt: skip
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_prediction_spans_join_the_callers_trace(
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    receiver: Receiver,
    tmp_path: Path,
    database_url: str,
    clock: FrozenClock,
) -> None:
    traced = rebuilt(tmp_path, database_url, clock, otel_exporter="otlp", otel_endpoint=receiver.url)
    try:
        with TestClient(traced.api(), raise_server_exceptions=False) as client:
            headers = {
                **auth(served["app"]),
                "content-type": "application/json",
                "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
            }
            body = json.dumps({"inputs": samples})
            assert client.post("/v1/models/cancer/predict", content=body, headers=headers).status_code == 200
            headers["authorization"] = f"Bearer {served['vic']}"  # a viewer may not predict
            assert client.post("/v1/models/cancer/predict", content=body, headers=headers).status_code == 403
    finally:
        traced.close()  # flushes the batched spans
    roots = [s for s in receiver.spans if s["name"] == "bastion.predict"]
    assert len(roots) == 2
    served_root, refused_root = roots
    assert served_root["trace_id"] == TRACE_ID and served_root["parent"] == CALLER_SPAN
    assert served_root["attributes"]["bastion.model"] == "cancer" and not served_root["error"]
    children = [s for s in receiver.spans if s["parent"] == served_root["span_id"]]
    assert [s["name"].removeprefix("bastion.predict.") for s in children] == STAGES
    assert refused_root["error"]
    refused = [s for s in receiver.spans if s["parent"] == refused_root["span_id"]]
    assert [s["name"] for s in refused] == ["bastion.predict.authorize"] and refused[0]["error"]
    dumped = json.dumps(receiver.spans)
    assert served["app"] not in dumped and served["vic"] not in dumped  # no credential in any span
    assert str(samples[0][0]) not in dumped  # and no input value


def test_tracing_is_off_by_default(system: Bastion) -> None:
    assert system.settings.otel_exporter == "none"
    assert system.gateway._tracer is None


def _value(any_value: Any) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))

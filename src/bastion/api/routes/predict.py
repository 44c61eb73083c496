"""Serving over HTTP: ``POST /v1/models/{name}/predict`` (the production version) or a pinned version, the
model's serving policy, and ``/metrics`` (authenticated). The pipeline itself is ``bastion.gateway``."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from opentelemetry.propagate import extract

from bastion.api.deps import RequestContext, cached_request_context, request_context
from bastion.api.streaming import read_capped
from bastion.gateway.policy import ServingPolicy
from bastion.gateway.service import Gateway
from bastion.spine.context import Resource

router = APIRouter(tags=["serving"])
MAX_MODEL_NAME, MAX_VERSION = 128, 2**31 - 1
ModelName = Annotated[str, Path(max_length=MAX_MODEL_NAME)]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]
JSON = "application/json"
MEDIA_HEADERS = ("content-type", "content-encoding")


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.services.gateway
    return gateway


async def answer_prediction(request: Request, name: str, version: int | None) -> Response:
    """A prediction over HTTP, as ``bastion.api.dataplane`` answers it before FastAPI's routing. The routes
    below declare the same paths for the OpenAPI schema and FastAPI's validation of what the data plane
    leaves to it; they answer with this too."""
    services = request.app.state.services
    gateway: Gateway = services.gateway
    # The body is capped as it arrives and only parsed after authorization (inside the pipeline).
    body = await read_capped(request, gateway.max_body_bytes)
    # Every value of a repeated header, as HTTP reads them: two media types are not one.
    content_type, encoding = (", ".join(request.headers.getlist(h)) or None for h in MEDIA_HEADERS)
    # A caller's W3C traceparent: the gateway's spans join its trace (read only when there are spans).
    parent = extract(request.headers) if gateway.traces else None
    # An API key seen in the last seconds verifies on the event loop; anything else (a load, a refusal to
    # audit, a token to check) is authenticated on a thread.
    context = cached_request_context(request) or await services.offload.run(partial(request_context, request))
    result = await gateway.predict(context, name, version, body, content_type, parent, encoding)
    return Response(orjson.dumps(result), media_type=JSON)


@router.post("/v1/models/{name}/predict")
async def predict(request: Request, name: ModelName) -> Response:
    """``{"inputs": [[feature, ...], ...]}`` for the model's production version."""
    return await answer_prediction(request, name, None)


@router.post("/v1/models/{name}/versions/{version}/predict")
async def predict_version(request: Request, name: ModelName, version: VersionNumber) -> Response:
    """The same, for a pinned version (it must still be loadable)."""
    return await answer_prediction(request, name, version)


@router.get("/v1/models/{name}/serving")
def serving_status(request: Request, context: RequestContext, name: ModelName) -> dict[str, Any]:
    return _gateway(request).status(context, name)


@router.put("/v1/models/{name}/serving", response_model=ServingPolicy)
def set_serving(
    request: Request, context: RequestContext, name: ModelName, body: ServingPolicy
) -> ServingPolicy:
    return _gateway(request).set_policy(context, name, body)


@router.get("/metrics")
def metrics(request: Request, context: RequestContext) -> Response:
    """Prometheus metrics of the gateway; reading them is an authorized, audited action."""
    services = request.app.state.services
    with services.uow.read(context, "metrics.read", Resource("state", "metrics")):
        body = _gateway(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4")

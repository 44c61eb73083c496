"""The prediction data plane, answered before FastAPI's middleware and routing.

Nearly all of a gateway's traffic is ``POST /v1/models/{name}/predict``. ``BastionApi`` (the application)
sends those requests straight to ``DataPlane`` behind the same ``RequestContextMiddleware`` every route has
(request id, security headers, access log, the problem document for an unexpected exception), and the
handler is the route's own: the same authentication, pipeline and problem documents. What they skip is the
exception, telemetry, body-limit, routing and dependency layers FastAPI runs per request — about a sixth of
the gateway's CPU per prediction, in a profile under load. The routes stay declared in FastAPI, which
documents them in the OpenAPI schema and answers any request the matcher leaves to it (a version number out
of range, a name too long: FastAPI's validation problem, as before).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from bastion.api.problems import answer_error
from bastion.api.routes.predict import MAX_MODEL_NAME, MAX_VERSION, answer_prediction
from bastion.core.errors import BastionError

_PREDICT = re.compile(rf"/v1/models/([^/]{{1,{MAX_MODEL_NAME}}})/(?:versions/([1-9][0-9]{{0,9}})/)?predict")


def prediction_route(scope: Scope) -> tuple[str, int | None] | None:
    """(model name, pinned version or None) when the request is a prediction this data plane answers."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    match = _PREDICT.fullmatch(scope["path"])
    if match is None:
        return None
    version = int(match[2]) if match[2] is not None else None
    return None if version is not None and version > MAX_VERSION else (match[1], version)


# Where the application leaves the matched route in the request's scope, so it is matched once per request.
ROUTE_KEY = "bastion.prediction"


class DataPlane:
    """The ASGI endpoint of a request ``prediction_route`` matched (the route under ``ROUTE_KEY``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, version = scope[ROUTE_KEY]
        request = Request(scope, receive)
        try:
            response = await answer_prediction(request, name, version)
        except BastionError as error:
            response = answer_error(request, error)
        await response(scope, receive, send)

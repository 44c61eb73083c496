"""Request ids, security headers and one structured log line per request (pure ASGI, no per-request task)."""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api.problems import PROBLEM_JSON, problem_body
from bastion.core.errors import InternalError
from bastion.core.ids import is_valid_request_id, new_request_id
from bastion.core.logs import request_id_var

log = logging.getLogger("bastion.api.access")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
# As ASGI raw headers, added to each response directly (a per-response header object costs more than this).
_RAW_SECURITY_HEADERS = [(name.encode(), value.encode()) for name, value in _SECURITY_HEADERS.items()]
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = supplied if supplied and is_valid_request_id(supplied) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        started_response = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                raw = list(message.get("headers") or ())
                # Header names in ASGI messages are lower-case bytes; a route's own value of a security
                # header is kept, the request id is always ours.
                present = {name.lower() for name, _ in raw}
                raw = [(name, value) for name, value in raw if name.lower() != _REQUEST_ID]
                raw.append((_REQUEST_ID, request_id.encode("latin-1")))
                raw.extend(header for header in _RAW_SECURITY_HEADERS if header[0] not in present)
                if scope.get("scheme") == "https" and _HSTS[0] not in present:
                    raw.append(_HSTS)
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error")
            if started_response:
                raise  # headers are gone; the server closes the connection
            status = 500
            await _send_internal_error(scope, send_with_headers)
        finally:
            if log.isEnabledFor(logging.INFO):  # the line's fields are not worth building for nobody
                log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 3)},
                )
            request_id_var.reset(token)


async def _send_internal_error(scope: Scope, send: Send) -> None:
    """The one answer to an unexpected exception: a problem document with the request id, nothing else."""
    body = json.dumps(problem_body(InternalError(), instance=scope["path"])).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

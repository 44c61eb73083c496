"""RFC 9457 problem documents for every error the API returns. No stack trace ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.core.errors import BastionError
from bastion.core.logs import request_id_var

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_body(
    error: BastionError,
    *,
    instance: str,
    status: int | None = None,
    code: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    code = code or error.code
    body: dict[str, Any] = {
        "type": f"urn:bastion:problem:{code}",
        "title": title or error.title,
        "status": status or error.status,
        "detail": error.message,
        "instance": instance,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if error.remedy:
        body["remedy"] = error.remedy
    body.update(error.extra)
    return body


def problem(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    remedy: str = "",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error = BastionError(detail, remedy=remedy, **(extra or {}))
    body = problem_body(error, instance=request.url.path, status=status, code=code, title=title)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_error(request: Request, error: BastionError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="bastion"'} if error.status == 401 else None
    if error.status in (429, 503):
        headers = {"Retry-After": str(error.extra.get("retry_after", 5))}
    return problem(
        request,
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.message,
        remedy=error.remedy,
        extra=error.extra,
        headers=headers,
    )


def answer_error(request: Request, error: BastionError) -> JSONResponse:
    """The answer to a refused or failed request (a server-side failure logged first)."""
    if error.status >= 500:
        log.error("request failed: %s", error.code, exc_info=error)
    return from_error(request, error)


async def _bastion_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, BastionError):  # registered for BastionError only
        raise error
    return answer_error(request, error)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    # Only where and what, never the offending input: it may be a secret pasted in the wrong field.
    fields = [
        {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", ""))}
        for item in errors
    ]
    return problem(
        request,
        status=422,
        code="request.invalid",
        title="Invalid request",
        detail="The request did not match the expected shape.",
        extra={"errors": fields},
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    status = error.status_code if isinstance(error, StarletteHTTPException) else 500
    titles = {404: "Not found", 405: "Method not allowed"}
    title = titles.get(status, "HTTP error")
    headers = getattr(error, "headers", None)
    return problem(
        request, status=status, code=f"http.{status}", title=title, detail=title + ".", headers=headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions are answered by RequestContextMiddleware, which still knows the request id.

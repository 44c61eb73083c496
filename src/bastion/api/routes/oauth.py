"""OAuth 2.0 for service accounts: the client-credentials token endpoint (RFC 6749 §4.4), JWKS (RFC 7517)
and authorization-server metadata (RFC 8414).

The token endpoint answers errors the way OAuth clients expect (RFC 6749 §5.2: ``{"error": ...}``), not as
problem documents; every refusal is still audited.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from bastion.core.errors import InvalidCredentials
from bastion.core.logs import request_id_var
from bastion.identity.tokens import ACCESS_TOKEN_LIFETIME
from bastion.policy import scope_within
from bastion.spine.context import ANONYMOUS, Context, PrincipalType, Resource
from bastion.spine.interfaces import Credentials

router = APIRouter(tags=["oauth"])
_SCOPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$")
MAX_FORM_BYTES = 4096


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    return request.app.state.services.tokens.jwks()  # type: ignore[no-any-return]


@router.get("/.well-known/oauth-authorization-server")
def metadata(request: Request) -> dict[str, Any]:
    return request.app.state.services.tokens.metadata()  # type: ignore[no-any-return]


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="bastion"'} if status == 401 else {}
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**headers, "Pragma": "no-cache"},
    )


def _client(request: Request, form: dict[str, list[str]]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if sep else None
    ids, secrets = form.get("client_id", []), form.get("client_secret", [])
    return (ids[0], secrets[0]) if len(ids) == 1 and len(secrets) == 1 else None


@router.post("/oauth/token")
async def token(request: Request) -> JSONResponse:
    services = request.app.state.services
    body = await request.body()
    if len(body) > MAX_FORM_BYTES or request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return _oauth_error(400, "invalid_request", "Send an application/x-www-form-urlencoded body.")
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if form.get("grant_type") != ["client_credentials"]:
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    base = Context(
        ANONYMOUS,
        request_id=request_id_var.get() or "",
        source_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    client = _client(request, form)
    try:
        if client is None:
            raise InvalidCredentials
        principal = services.authenticator.api_keys.authenticate(Credentials("bearer", SecretStr(client[1])))
        if principal.id != client[0] or principal.type is not PrincipalType.SERVICE:
            raise InvalidCredentials
    except InvalidCredentials:
        services.uow.refuse(
            base,
            "identity.tokens.issue",
            Resource("endpoint", "/oauth/token"),
            "client authentication failed",
        )
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    requested = tuple(" ".join(form.get("scope", [""])).split())
    allowed = tuple(principal.attributes.get("scopes", ()))
    if any(not _SCOPE.fullmatch(scope) for scope in requested) or (
        allowed and not all(scope_within(allowed, scope) for scope in requested)
    ):
        return _oauth_error(
            400, "invalid_scope", "A requested scope is malformed or wider than the client's."
        )
    context = Context(
        principal, request_id=base.request_id, source_address=base.source_address, user_agent=base.user_agent
    )
    issued = services.tokens.issue(context, requested or allowed)
    return JSONResponse(
        {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "scope": issued.scope,
        },
        headers={"Pragma": "no-cache"},
    )

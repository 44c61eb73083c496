"""OAuth 2.0: the token endpoint — client credentials for service accounts (RFC 6749 §4.4) and token
exchange from an API key or an external OIDC token (RFC 8693) —, JWKS (RFC 7517) and authorization-server
metadata (RFC 8414).

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

from bastion.api.deps import authorization
from bastion.core.errors import InvalidCredentials
from bastion.core.logs import request_id_var
from bastion.identity.tokens import ACCESS_TOKEN_LIFETIME, AUDIENCE, TOKEN_EXCHANGE
from bastion.policy import scope_within
from bastion.spine.context import ANONYMOUS, Context, Principal, PrincipalType, Resource
from bastion.spine.interfaces import Credentials

router = APIRouter(tags=["oauth"])
_SCOPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$")
MAX_FORM_BYTES = 20_480  # room for an external token as subject_token
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a token type URN
API_KEY_TOKEN_TYPE = "urn:bastion:params:oauth:token-type:api-key"  # noqa: S105 - a token type URN
EXTERNAL_TOKEN_TYPES = (
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
    ACCESS_TOKEN_TYPE,
)


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
    try:
        header = authorization(request) or ""
    except InvalidCredentials:
        return None
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
    body = await request.body()
    if len(body) > MAX_FORM_BYTES or request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return _oauth_error(400, "invalid_request", "Send an application/x-www-form-urlencoded body.")
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    base = Context(
        ANONYMOUS,
        request_id=request_id_var.get() or "",
        source_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    grant_type = form.get("grant_type")
    if grant_type == ["client_credentials"]:
        return _client_credentials(request, form, base)
    if grant_type == [TOKEN_EXCHANGE]:
        return _token_exchange(request, form, base)
    return _oauth_error(400, "unsupported_grant_type", "Use client_credentials or token exchange (RFC 8693).")


def _client_credentials(request: Request, form: dict[str, list[str]], base: Context) -> JSONResponse:
    services = request.app.state.services
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
    return _issue(request, form, base, principal, exchanged=False)


def _token_exchange(request: Request, form: dict[str, list[str]], base: Context) -> JSONResponse:
    """RFC 8693: the subject token (an API key, or a token of a configured external OIDC issuer) is itself the
    authentication; the issued token is about the same subject and never wider than it."""
    services = request.app.state.services
    malformed = _malformed_exchange(form, services.tokens.issuer)
    if malformed is not None:
        return malformed
    subject, kind = form["subject_token"], form["subject_token_type"]
    try:
        if kind == [API_KEY_TOKEN_TYPE]:
            principal = services.authenticator.api_keys.authenticate(
                Credentials("bearer", SecretStr(subject[0]))
            )
        elif kind[0] in EXTERNAL_TOKEN_TYPES:
            principal = services.authenticator.oidc.authenticate_token(subject[0])
        else:
            return _oauth_error(400, "invalid_request", "Unsupported subject_token_type.")
        if principal.attributes.get("break_glass"):
            raise InvalidCredentials  # every use of break-glass must be the credential itself, alerted
    except InvalidCredentials:
        services.uow.refuse(
            base,
            "identity.tokens.issue",
            Resource("endpoint", "/oauth/token"),
            "subject token did not verify",
        )
        return _oauth_error(400, "invalid_request", "The subject token is not valid.")
    return _issue(request, form, base, principal, exchanged=True)


def _malformed_exchange(form: dict[str, list[str]], issuer: str) -> JSONResponse | None:
    if len(form.get("subject_token", [])) != 1 or len(form.get("subject_token_type", [])) != 1:
        return _oauth_error(400, "invalid_request", "Send one subject_token and its subject_token_type.")
    if form.get("actor_token") or form.get("actor_token_type"):
        return _oauth_error(400, "invalid_request", "Delegation (actor_token) is not supported.")
    if form.get("requested_token_type", [ACCESS_TOKEN_TYPE]) != [ACCESS_TOKEN_TYPE]:
        return _oauth_error(400, "invalid_request", "Only access tokens are issued.")
    targets = form.get("audience", []) + form.get("resource", [])
    if any(target not in (AUDIENCE, issuer) for target in targets):
        return _oauth_error(400, "invalid_target", "Tokens are issued for this Bastion only.")
    return None


def _issue(
    request: Request, form: dict[str, list[str]], base: Context, principal: Principal, *, exchanged: bool
) -> JSONResponse:
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
    issued = request.app.state.services.tokens.issue(context, requested or allowed)
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "scope": issued.scope,
    }
    if exchanged:
        body["issued_token_type"] = ACCESS_TOKEN_TYPE
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

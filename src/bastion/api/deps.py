"""Builds the ``Context`` for a request: authenticate the caller, take the source, request id and purpose."""

from __future__ import annotations

import ssl
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from bastion.core.errors import InvalidCredentials
from bastion.core.ids import new_request_id
from bastion.core.logs import request_id_var
from bastion.spine.context import ANONYMOUS, Context, Principal, Resource
from bastion.spine.interfaces import Credentials

PURPOSE_HEADER = "x-bastion-purpose"
DESTINATION_HEADER = "x-bastion-destination-region"  # where read data goes, if not the dataset's region
MAX_CREDENTIAL_LENGTH = 8192


def authorization(request: Request) -> str | None:
    """The request's one ``Authorization`` header. More than one is an invalid credential: hops disagree on
    which counts (the first, the last, all joined), and a credential one hop checks while another uses a
    different one is a way in."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise InvalidCredentials
    return values[0] if values else None


def parse_authorization(header: str | None) -> Credentials | None:
    """``Authorization: <scheme> <value>``. Anything present but malformed is an invalid credential."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not scheme or not value or " " in value or len(header) > MAX_CREDENTIAL_LENGTH:
        raise InvalidCredentials
    return Credentials(scheme=scheme.lower(), value=SecretStr(value))


def client_certificate(request: Request) -> bytes | None:
    """The TLS-verified client certificate (DER), when the connection presented one (see app.tls_protocol).
    A bearer credential on the same request takes precedence over it."""
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


def request_context(request: Request) -> Context:
    services = request.app.state.services
    base = _anonymous(request)
    try:
        credentials = parse_authorization(authorization(request))
        certificate = client_certificate(request)
        if credentials is None and certificate is not None:
            principal = services.certificates.authenticate_certificate(certificate)
        else:
            principal = services.authenticator.authenticate(credentials)
    except InvalidCredentials:
        services.uow.refuse(
            base, "auth.authenticate", Resource("endpoint", request.url.path), "credentials did not verify"
        )
        raise
    context = _authenticated(request, base, principal)
    if principal.attributes.get("break_glass"):
        # Every use of the sealed emergency credential pages the SIEM before the request goes on; if that
        # record cannot be written, the request is refused (503).
        services.uow.alert(
            context,
            "identity.breakglass.used",
            Resource("principal", principal.id),
            "break-glass credential used",
            {"method": request.method, "path": request.url.path},
        )
    return context


def cached_request_context(request: Request) -> Context | None:
    """The request's ``Context`` when its credential verifies from the authenticator's cache alone — an API
    key seen in the last seconds — so a request served on the event loop authenticates without blocking.
    ``None`` for anything else (no credential, a certificate, a token, a key not cached or not verifying, the
    break-glass key): ``request_context`` then decides, audits any refusal and raises any alert."""
    try:
        credentials = parse_authorization(authorization(request))
    except InvalidCredentials:
        return None
    principal = request.app.state.services.authenticator.authenticate_cached(credentials)
    if principal is None or principal.attributes.get("break_glass"):
        return None
    return _authenticated(request, _anonymous(request), principal)


def _anonymous(request: Request) -> Context:
    return Context(
        principal=ANONYMOUS,
        request_id=request_id_var.get() or new_request_id(),
        source_address=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
    )


def _authenticated(request: Request, base: Context, principal: Principal) -> Context:
    return Context(
        principal=principal,
        request_id=base.request_id,
        source_address=base.source_address,
        user_agent=base.user_agent,
        purpose=request.headers.get(PURPOSE_HEADER),
        destination=request.headers.get(DESTINATION_HEADER),
    )


RequestContext = Annotated[Context, Depends(request_context)]

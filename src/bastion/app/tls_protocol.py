"""uvicorn's HTTP/1.1 protocol, handing the application the client certificate the TLS layer verified.

uvicorn does not expose the peer certificate to ASGI apps. This subclass reads it once per connection and adds
it to every request's scope as the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``,
PEM), which ``bastion.api.deps`` maps to a service principal.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ASGIApp = Any


class ClientCertHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        if der:
            self.app = _with_client_cert(self.app, ssl.DER_cert_to_PEM_cert(der))


def _with_client_cert(app: ASGIApp, pem: str) -> ASGIApp:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem], "client_cert_error": None}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapped

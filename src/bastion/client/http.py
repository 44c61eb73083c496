"""A small synchronous client. Errors arrive as ``BastionAPIError`` built from the server's problem+json."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx


class BastionAPIError(Exception):
    """An error answer from the server, carrying its stable ``code`` and ``request_id``."""

    def __init__(
        self, status: int, code: str, detail: str, request_id: str | None, body: dict[str, Any]
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.body = body


class BastionClient:
    """``BastionClient("https://127.0.0.1:8443", ca_file=".bastion/tls/ca.pem", token=...)``.

    TLS verification is always on: pass ``ca_file`` for a private CA; there is no switch to turn it off.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | Path | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"user-agent": "bastion-client/0.1"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, verify=verify, transport=transport
        )

    def __enter__(self) -> BastionClient:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        return self._get("/healthz")

    def ready(self) -> dict[str, Any]:
        return self._get("/readyz")

    def audit_events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Every matching event, oldest first, fetching pages as needed."""
        params: dict[str, Any] = {"limit": page_size}
        for key, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if value is not None:
                params[key] = value
        for key, moment in (("since", since), ("until", until)):
            if moment is not None:
                params[key] = moment.isoformat()
        while True:
            page = self._get("/v1/audit/events", params=params)
            yield from page["events"]
            if page.get("next_after_seq") is None:
                return
            params["after_seq"] = int(page["next_after_seq"])

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.get(path, params=params)
        if response.status_code >= 400:
            raise _error_from(response)
        data: dict[str, Any] = response.json()
        return data


def _error_from(response: httpx.Response) -> BastionAPIError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return BastionAPIError(
        status=response.status_code,
        code=str(body.get("code", f"http.{response.status_code}")),
        detail=str(body.get("detail", response.reason_phrase)),
        request_id=body.get("request_id") or response.headers.get("x-request-id"),
        body=body,
    )

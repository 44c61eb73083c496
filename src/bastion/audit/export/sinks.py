"""Where events go: a TCP or TLS stream, a local file, or an HTTP collector.

Delivery guarantees per sink, which the exporter's cursor builds on: a file sink has delivered once the
bytes are fsynced; an HEC sink once the collector answered 2xx; a TCP/TLS sink once ``sendall`` returned —
syslog has no application-level acknowledgement, so an event sitting in a kernel buffer when the receiver
dies can be lost (use HEC, or a receiver that writes before it reads on, where that matters).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from bastion.audit.export import formats
from bastion.core.errors import BastionError
from bastion.core.sink_settings import SinkKind, SinkSettings

CONNECT_TIMEOUT = 5.0


class ExportError(BastionError):
    code = "audit.export_failed"
    status = 502
    title = "SIEM export failed"


class Sink(Protocol):
    name: str

    def send(self, events: list[dict[str, Any]]) -> None:
        """Deliver ``events`` in order, or raise ``ExportError`` (the exporter then retries them all)."""
        ...

    def close(self) -> None: ...


class TcpTransport:
    """One persistent connection, re-established after any failure."""

    def __init__(self, address: str, tls: ssl.SSLContext | None) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port, self._tls = host.strip("[]"), int(port), tls
        self._socket: socket.socket | None = None

    def sendall(self, data: bytes) -> None:
        try:
            if self._socket is None:
                raw = socket.create_connection((self._host, self._port), timeout=CONNECT_TIMEOUT)
                self._socket = self._tls.wrap_socket(raw, server_hostname=self._host) if self._tls else raw
            self._socket.sendall(data)
        except (OSError, ssl.SSLError) as error:
            self.close()
            raise ExportError(
                f"Could not deliver to {self._host}:{self._port}: {error.strerror or error}."
            ) from error

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            finally:
                self._socket = None


class StreamSink:
    def __init__(self, name: str, transport: TcpTransport, encode: Callable[[dict[str, Any]], bytes]) -> None:
        self.name = name
        self._transport = transport
        self._encode = encode

    def send(self, events: list[dict[str, Any]]) -> None:
        self._transport.sendall(b"".join(self._encode(event) for event in events))

    def close(self) -> None:
        self._transport.close()


class FileLinesSink:
    """JSON lines appended and fsynced to a local file (to be shipped by a log forwarder)."""

    def __init__(self, name: str, path: Path, encode: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.name = name
        self._path = path
        self._encode = encode

    def send(self, events: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(self._encode(event), sort_keys=True) + "\n" for event in events)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise ExportError(f"Could not write to {self._path}: {error.strerror}.") from error

    def close(self) -> None:
        pass


class HecSink:
    def __init__(self, name: str, url: str, token: str, hostname: str, verify: ssl.SSLContext | bool) -> None:
        self.name = name
        self._hostname = hostname
        self._client = httpx.Client(
            base_url=url, verify=verify, timeout=CONNECT_TIMEOUT, headers={"authorization": f"Splunk {token}"}
        )

    def send(self, events: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(formats.hec(event, self._hostname), sort_keys=True) for event in events)
        try:
            response = self._client.post("/services/collector/event", content=body.encode())
        except httpx.HTTPError as error:
            raise ExportError(f"Could not reach the HEC collector: {type(error).__name__}.") from error
        if response.status_code // 100 != 2:
            raise ExportError(f"The HEC collector answered {response.status_code}.")

    def close(self) -> None:
        self._client.close()


def _tls_context(settings: SinkSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


def build_sink(settings: SinkSettings) -> Sink:
    hostname = settings.hostname
    if settings.kind is SinkKind.HEC:
        if settings.url is None or settings.token is None:  # guarded by SinkSettings; keeps mypy informed
            raise ExportError(f"Sink {settings.name} is missing url or token.")
        verify: ssl.SSLContext | bool = _tls_context(settings) or True
        return HecSink(settings.name, settings.url, settings.token.get_secret_value(), hostname, verify)
    if settings.kind is SinkKind.OCSF and settings.path is not None:
        return FileLinesSink(settings.name, settings.path, formats.ocsf)
    transport = TcpTransport(settings.address or "", _tls_context(settings))
    encoders: dict[SinkKind, Callable[[dict[str, Any]], bytes]] = {
        SinkKind.SYSLOG: lambda event: formats.octet_frame(formats.rfc5424(event, hostname)),
        SinkKind.CEF: lambda event: formats.octet_frame(formats.rfc5424(event, hostname, formats.cef(event))),
        SinkKind.OCSF: lambda event: (json.dumps(formats.ocsf(event), sort_keys=True) + "\n").encode(),
    }
    return StreamSink(settings.name, transport, encoders[settings.kind])

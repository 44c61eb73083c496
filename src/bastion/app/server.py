"""Running the API under uvicorn: HTTPS from the local CA by default, plain HTTP only on loopback."""

from __future__ import annotations

import gc
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import uvicorn

from bastion.app.background import PeriodicJob
from bastion.app.container import Bastion, build, system_context
from bastion.app.state import tls_dir
from bastion.app.tls_protocol import ClientCertHttpProtocol
from bastion.core.clock import SystemClock
from bastion.core.errors import ConfigError
from bastion.core.identity_settings import MtlsMode
from bastion.core.settings import Settings
from bastion.keys import LocalCA, TlsFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeTarget:
    url: str
    tls: TlsFiles | None

    @property
    def curl(self) -> str:
        if self.tls is None:
            return f"curl {self.url}/healthz"
        return f"curl --cacert {self.tls.ca_cert} {self.url}/healthz"


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - a wildcard bind is reached through loopback locally
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def plan_serving(settings: Settings) -> ServeTarget:
    """Decide how to serve, refusing unsafe combinations before anything listens."""
    if settings.unsafe_http:
        if settings.mtls is not MtlsMode.OFF:
            raise ConfigError("mTLS needs TLS.", remedy="Drop --unsafe-http, or set mtls = 'off'.")
        if not settings.host_is_loopback:
            raise ConfigError(
                "Plain HTTP is only allowed on a loopback address.",
                remedy="Drop --unsafe-http to serve HTTPS, or listen on 127.0.0.1.",
            )
        return ServeTarget(url=f"http://{_url_host(settings.host)}:{settings.port}", tls=None)
    files = LocalCA(tls_dir(settings), SystemClock()).ensure_server_files(settings.host)
    return ServeTarget(url=f"https://{_url_host(settings.host)}:{settings.port}", tls=files)


def _protocol_options(settings: Settings, target: ServeTarget) -> dict[str, Any]:
    """The HTTP protocol (httptools' parser); with mTLS, asking for (or requiring, at the handshake) a client
    certificate chaining to the client CA, which the protocol hands to the app."""
    if target.tls is None or settings.mtls is MtlsMode.OFF:
        return {"http": "httptools"}
    return {
        "http": ClientCertHttpProtocol,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if settings.mtls is MtlsMode.REQUIRED else ssl.CERT_OPTIONAL,
        "ssl_ca_certs": str(settings.mtls_client_ca or target.tls.ca_cert),
    }


def serve(settings: Settings, target: ServeTarget) -> None:
    """Serve until SIGINT/SIGTERM, then shut down cleanly and release the database."""
    if target.tls is None:
        log.warning("serving plain HTTP (--unsafe-http): credentials and data cross the wire unencrypted")
    bastion = build(settings)
    checkpointer = PeriodicJob(
        "checkpoint",
        settings.audit_checkpoint_interval_s,
        lambda: bastion.trail.checkpoint_if_changed(system_context("audit-checkpoint")),
    )
    config = uvicorn.Config(
        bastion.api(),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our logging is configured already, with redaction
        access_log=False,
        server_header=False,
        # Named, not "auto": uvloop is a dependency, and asyncio's own loop would quietly add to the gateway's
        # latency (see benchmarks/bench_gateway.py).
        loop="uvloop",
        proxy_headers=False,  # never trust X-Forwarded-For unless a trusted proxy is configured
        timeout_graceful_shutdown=10,
        ssl_certfile=target.tls.server_cert if target.tls else None,
        ssl_keyfile=target.tls.server_key if target.tls else None,
        **_protocol_options(settings, target),
    )
    exporter = PeriodicJob(
        "export",
        settings.audit_export_interval_s,
        lambda: bastion.exporter.run_once(system_context("audit-export")),
    )
    # Expired dataset versions are crypto-shredded, each with a deletion certificate in the audit log.
    retention = PeriodicJob(
        "retention",
        settings.data_retention_interval_s,
        lambda: housekeeping(bastion),
    )
    bastion.writer.start_spool()
    checkpointer.start()
    exporter.start()
    retention.start()
    # Everything built so far (modules, the application, its caches' machinery) lives as long as the
    # process: out of the collector's sight, a full collection walks only what serving allocates. Walking
    # it all — ~290,000 objects — took 80-170 ms here (start-up's own full collections, measured); under
    # load one comes seldom, but it stops the event loop and every request in flight waits.
    gc.freeze()
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled once it has shut down gracefully: that is a clean exit.
        log.info("shut down on interrupt")
    finally:
        checkpointer.stop()  # a last checkpoint, so a clean shutdown leaves the whole log witnessed
        exporter.stop()  # and a last delivery to the SIEMs
        retention.stop()
        bastion.close()


def housekeeping(bastion: Bastion) -> None:
    """The data-protection duties that run on a schedule: retention, then overdue data-subject requests."""
    bastion.retention.run(system_context("data-retention"))
    bastion.subjects.alert_overdue(system_context("data-subjects"))

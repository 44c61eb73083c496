"""``bastion init`` and ``bastion up``."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.app import init_state, plan_serving, serve
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, err, out

HostOption = Annotated[
    str | None,
    typer.Option("--host", envvar="BASTION_HOST", help="Address to listen on.", show_default="127.0.0.1"),
]
PortOption = Annotated[
    int | None, typer.Option("--port", envvar="BASTION_PORT", help="Port to listen on.", show_default="8443")
]
UnsafeHttpOption = Annotated[
    bool | None,
    typer.Option(
        "--unsafe-http",
        help="Serve plain HTTP (loopback only) (env: BASTION_UNSAFE_HTTP).",
        show_default=False,
    ),
]


def init(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Create the state directory, database and TLS material, and migrate the schema. Idempotent."""
    report = init_state(settings_from(config))
    if json:
        emit_json(
            {
                "state_dir": report.state_dir,
                "database": report.database,
                "schema_revision": report.schema_revision,
                "ca_cert": report.ca_cert,
            }
        )
        return
    out.print(f"State directory: {report.state_dir}")
    out.print(f"Database:        {report.database} (schema {report.schema_revision})")
    out.print(f"Local CA:        {report.ca_cert}")


def up(
    host: HostOption = None,
    port: PortOption = None,
    unsafe_http: UnsafeHttpOption = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Initialise if needed and serve the API (HTTPS with the local CA) until Ctrl-C."""
    settings = settings_from(config, host=host, port=port, unsafe_http=unsafe_http)
    init_state(settings)
    target = plan_serving(settings)
    predict_curl = None
    if settings.demo:
        from bastion.app import demo  # noqa: PLC0415 - scikit-learn is imported only when a demo is made

        with operator_session(settings) as bastion:
            if demo.needed(bastion):
                err.print("Setting up the demo model (train, scan, sign, provenance, gate, approvals)...")
                made = demo.set_up(bastion)
                predict_curl = made.curl(target.url, target.tls.ca_cert if target.tls else None)
    if json:
        emit_json(
            {
                "url": target.url,
                "ca_cert": target.tls.ca_cert if target.tls else None,
                "curl": target.curl,
                "predict": predict_curl,
            }
        )
    else:
        out.print(f"Bastion is starting at {target.url}")
        if target.tls:
            out.print(f"CA certificate: {target.tls.ca_cert}")
        else:
            err.print("[bold yellow]warning[/]: plain HTTP (--unsafe-http); traffic is not encrypted.")
        if predict_curl:
            out.print("Demo model breast-cancer is in production; its client's API key is shown this once:")
            out.print(f"Predict: {predict_curl}")
        out.print(f"Try: {target.curl}")
    serve(settings, target)

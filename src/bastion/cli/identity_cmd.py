"""``bastion principals ...`` and ``bastion apikeys ...``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, emit_rows, err, out
from bastion.core.errors import InvalidInput
from bastion.identity import IssuedKey

principals = typer.Typer(help="Users, service accounts and groups.", no_args_is_help=True)
apikeys = typer.Typer(help="API keys (shown once; only a keyed hash is stored).", no_args_is_help=True)


@principals.command("create")
def create_principal(
    principal_id: Annotated[str, typer.Argument(help="user:NAME, service:NAME or group:NAME")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    attribute: Annotated[
        list[str] | None, typer.Option("--attr", help="KEY=VALUE, repeatable (ABAC).")
    ] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    attributes = {}
    for pair in attribute or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--attr takes KEY=VALUE, got '{pair}'.")
        attributes[key] = value
    with operator_session(settings_from(config)) as bastion:
        info = bastion.identity.create_principal(operator_context(), principal_id, name, attributes)
    if json:
        emit_json(
            {
                "id": info.id,
                "type": info.type,
                "display_name": info.display_name,
                "attributes": info.attributes,
            }
        )
    else:
        out.print(f"Created {info.id}.")


@principals.command("list")
def list_principals(config: ConfigOption = None, json: JsonOption = False) -> None:
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.identity.list_principals(operator_context())
    if json:
        emit_json(
            [
                {
                    "id": i.id,
                    "type": i.type,
                    "display_name": i.display_name,
                    "attributes": i.attributes,
                    "disabled": i.disabled,
                }
                for i in infos
            ]
        )
        return
    table = Table("id", "type", "name", "attributes", box=None)
    for info in infos:
        table.add_row(
            info.id, info.type, info.display_name, ", ".join(f"{k}={v}" for k, v in info.attributes.items())
        )
    out.print(table)


@principals.command("add-member")
def add_member(
    group_id: Annotated[str, typer.Argument(help="group:NAME")],
    member_id: Annotated[str, typer.Argument(help="user:NAME or service:NAME")],
    config: ConfigOption = None,
) -> None:
    """Put MEMBER in GROUP; the group's roles apply to it."""
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.add_member(operator_context(), group_id, member_id)


@principals.command("remove-member")
def remove_member(
    group_id: Annotated[str, typer.Argument()],
    member_id: Annotated[str, typer.Argument()],
    config: ConfigOption = None,
) -> None:
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.remove_member(operator_context(), group_id, member_id)


def _show_key(issued: IssuedKey, json: bool) -> None:
    if json:
        emit_json(
            {
                "key_id": issued.key_id,
                "principal_id": issued.principal_id,
                "token": issued.token,
                "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            }
        )
        return
    err.print("This is the only time the key is shown; store it in your secret manager now.")
    out.print(issued.token, markup=False)


@apikeys.command("create")
def create_key(
    principal_id: Annotated[str, typer.Argument()],
    expires_in_days: Annotated[int | None, typer.Option("--expires-in-days", min=1, max=366)] = 90,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Narrow the key, e.g. audit.read.")
    ] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Issue an API key for PRINCIPAL (default lifetime 90 days)."""
    lifetime = timedelta(days=expires_in_days) if expires_in_days else None
    with operator_session(settings_from(config)) as bastion:
        issued = bastion.identity.create_api_key(
            operator_context(), principal_id, expires_in=lifetime, scopes=tuple(scope or ())
        )
    _show_key(issued, json)


@apikeys.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Revoke a key; it stops working on the next request, on every replica."""
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.revoke_api_key(operator_context(), key_id)


@apikeys.command("rotate")
def rotate_key(
    key_id: Annotated[str, typer.Argument()],
    overlap_minutes: Annotated[int, typer.Option("--overlap-minutes", min=0, max=10_080)] = 60,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Issue a replacement; the old key keeps working for the overlap only."""
    with operator_session(settings_from(config)) as bastion:
        issued = bastion.identity.rotate_api_key(
            operator_context(), key_id, timedelta(minutes=overlap_minutes)
        )
    _show_key(issued, json)


tokens = typer.Typer(
    help="Access tokens (OAuth 2.0 client credentials at POST /oauth/token).", no_args_is_help=True
)


@tokens.command("revoke")
def revoke_token(
    jti: Annotated[str, typer.Argument(help="The token's jti claim.")], config: ConfigOption = None
) -> None:
    """Refuse an access token before it expires (takes effect within 2 seconds)."""
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.revoke_token(operator_context(), jti)


@principals.command("disable")
def disable(principal_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Refuse every key and token of PRINCIPAL (within 2 seconds) until it is enabled again."""
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.set_disabled(operator_context(), principal_id, disabled=True)


@principals.command("enable")
def enable(principal_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.set_disabled(operator_context(), principal_id, disabled=False)


elevations = typer.Typer(help="Just-in-time elevation: approve, deny, revoke, list.", no_args_is_help=True)


@elevations.command("list")
def list_elevations(
    state: Annotated[str | None, typer.Option("--state", help="pending, approved, ...")] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.elevations.list(operator_context(), state)
    rows = [
        {
            "id": i.id,
            "requester": i.requester_id,
            "role": i.role,
            "resource": f"{i.resource_type}:{i.resource_id or '*'}" if i.resource_type else "*",
            "minutes": int(i.duration.total_seconds() // 60),
            "state": i.state,
            "reason": i.reason,
        }
        for i in infos
    ]
    emit_rows(rows, ("id", "requester", "role", "resource", "minutes", "state", "reason"), json)


@elevations.command("approve")
def approve(elevation_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    with operator_session(settings_from(config)) as bastion:
        info = bastion.elevations.approve(operator_context(), elevation_id)
    out.print(f"Approved: {info.requester_id} holds {info.role} until {info.expires_at}.")


@elevations.command("deny")
def deny(elevation_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    with operator_session(settings_from(config)) as bastion:
        bastion.elevations.deny(operator_context(), elevation_id)


@elevations.command("revoke")
def revoke(elevation_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """End an approved elevation now."""
    with operator_session(settings_from(config)) as bastion:
        bastion.elevations.revoke(operator_context(), elevation_id)


breakglass = typer.Typer(help="The sealed emergency credential.", no_args_is_help=True)


@breakglass.command("create")
def create_break_glass(
    principal_id: Annotated[str, typer.Option("--principal")] = "user:break-glass",
    role: Annotated[str, typer.Option("--role")] = "security-admin",
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Issue (or replace) the emergency credential; seal it offline. Every use raises a critical event."""
    with operator_session(settings_from(config)) as bastion:
        issued = bastion.identity.create_break_glass(operator_context(), principal_id, role)
    if not json:
        err.print("Seal this credential offline (e.g. split between two safes). Every use pages the SIEM.")
    _show_key(issued, json)


certs = typer.Typer(
    help="Client certificates from the local CA, for service-to-service mTLS.", no_args_is_help=True
)


@certs.command("issue")
def issue_certificate(
    principal_id: Annotated[str, typer.Argument(help="service:NAME")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for NAME.pem and NAME-key.pem.")] = Path(),
    days: Annotated[int, typer.Option("--days", min=1, max=397)] = 90,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Issue a client certificate naming PRINCIPAL; its key is written 0600 and kept nowhere else."""
    with operator_session(settings_from(config)) as bastion:
        issued = bastion.client_certs.issue(operator_context(), principal_id, timedelta(days=days))
        ca = bastion.client_certs.ca_certificate
    stem = principal_id.replace(":", "-")
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}-key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(issued.private_key_pem)
    cert_path.write_bytes(issued.certificate_pem)
    report = {
        "certificate": str(cert_path.resolve()),
        "key": str(key_path.resolve()),
        "ca": ca,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "not_after": issued.not_after.isoformat(),
    }
    if json:
        emit_json(report)
    else:
        out.print(f"Certificate {report['certificate']}\nKey         {report['key']}\nServer CA   {ca}")

"""``bastion roles ...`` and ``bastion policies ...``: who holds which role, and the Cedar policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, emit_rows, out
from bastion.core.errors import InvalidInput
from bastion.policy.admin import PolicyAdmin
from bastion.policy.catalog import ROLES
from bastion.policy.compiler import MAX_POLICY_BYTES
from bastion.spine.context import Resource

roles = typer.Typer(help="Roles: the shipped ones, and who holds them.", no_args_is_help=True)
policies = typer.Typer(help="Cedar policies: validate, version, activate, roll back.", no_args_is_help=True)


def _scope(resource: str | None) -> Resource | None:
    if resource is None:
        return None
    kind, _, ident = resource.partition(":")
    if not kind:
        raise InvalidInput("--resource takes TYPE or TYPE:ID, e.g. key or key:datasets.")
    return Resource(kind, ident or "*")


@roles.command("list")
def list_roles(json: JsonOption = False) -> None:
    """The shipped roles and the actions each allows."""
    if json:
        emit_json({role: list(actions) for role, actions in ROLES.items()})
        return
    table = Table("role", "actions", box=None)
    for role, actions in ROLES.items():
        table.add_row(role, ", ".join(actions))
    out.print(table)


@roles.command("assign")
def assign(
    principal_id: Annotated[str, typer.Argument(help="user:, service: or group: id")],
    role: Annotated[str, typer.Argument(help="e.g. auditor (see `bastion roles list`)")],
    resource: Annotated[
        str | None, typer.Option("--resource", help="Only on TYPE, or on TYPE:ID (e.g. key:datasets).")
    ] = None,
    expires_in_minutes: Annotated[int | None, typer.Option("--expires-in-minutes", min=1)] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    lifetime = timedelta(minutes=expires_in_minutes) if expires_in_minutes else None
    with operator_session(settings_from(config)) as bastion:
        binding = bastion.identity.assign_role(
            operator_context(), principal_id, role, resource=_scope(resource), expires_in=lifetime
        )
    if json:
        emit_json({"binding_id": binding})
    else:
        out.print(f"Assigned {role} to {principal_id} ({binding}).")


@roles.command("unassign")
def unassign(binding_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """End a role binding (within 2 seconds on every replica)."""
    with operator_session(settings_from(config)) as bastion:
        bastion.identity.unassign_role(operator_context(), binding_id)


@roles.command("show")
def show(
    principal_id: Annotated[str, typer.Argument()], config: ConfigOption = None, json: JsonOption = False
) -> None:
    """PRINCIPAL's active role bindings (its groups' included)."""
    with operator_session(settings_from(config)) as bastion:
        bindings = bastion.identity.roles(operator_context(), principal_id)
    rows = [
        {
            "binding_id": b.id,
            "holder": b.principal_id,
            "role": b.role,
            "resource": f"{b.resource_type}:{b.resource_id or '*'}" if b.resource_type else "*",
            "origin": b.origin,
            "expires_at": b.expires_at.isoformat() if b.expires_at else None,
        }
        for b in bindings
    ]
    emit_rows(rows, ("binding", "holder", "role", "resource", "origin", "expires"), json)


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_POLICY_BYTES:
        raise InvalidInput(f"A policy set is at most {MAX_POLICY_BYTES // 1024} KiB.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text.") from None


PolicyFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@policies.command("validate")
def validate(path: PolicyFile, config: ConfigOption = None) -> None:
    """Check a Cedar policy file against Bastion's schema (exit 4 with every error if it fails)."""
    with operator_session(settings_from(config)) as bastion:
        compiled = bastion.policies.validate(operator_context(), _read(path))
    out.print(f"Valid: {len(compiled.custom_ids)} policies ({', '.join(compiled.custom_ids) or 'none'}).")


@policies.command("set")
def set_policies(
    path: PolicyFile,
    comment: Annotated[str, typer.Option("--comment", help="Why this change (kept with the version).")] = "",
    activate: Annotated[bool, typer.Option("--activate/--no-activate")] = True,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Store PATH as the next policy version (validated first) and, by default, activate it."""
    with operator_session(settings_from(config)) as bastion:
        info = bastion.policies.write(operator_context(), _read(path), comment)
        if activate:
            bastion.policies.activate(operator_context(), info.version)
    if json:
        emit_json({"version": info.version, "sha256": info.sha256, "active": activate})
    else:
        out.print(f"Stored policy version {info.version}{' (active)' if activate else ''}.")


@policies.command("activate")
def activate_version(
    version: Annotated[int, typer.Argument(min=0, help="0 = the shipped policies only")],
    config: ConfigOption = None,
) -> None:
    """Make VERSION the active policy set (rolling back is activating an older one)."""
    with operator_session(settings_from(config)) as bastion:
        bastion.policies.activate(operator_context(), version)


@policies.command("list")
def list_versions(config: ConfigOption = None, json: JsonOption = False) -> None:
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.policies.versions(operator_context())
    rows = [
        {
            "version": i.version,
            "active": i.active,
            "created_at": i.created_at.isoformat(),
            "created_by": i.created_by,
            "sha256": i.sha256,
            "comment": i.comment,
        }
        for i in infos
    ]
    emit_rows(rows, ("version", "active", "created", "by", "sha256", "comment"), json)


@policies.command("show")
def show_policies(
    version: Annotated[int | None, typer.Option("--version", help="Default: the active one.")] = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="The shipped policies instead.")] = False,
    schema: Annotated[bool, typer.Option("--schema", help="The Cedar schema instead.")] = False,
    config: ConfigOption = None,
) -> None:
    if schema or defaults:
        out.print(PolicyAdmin.schema() if schema else PolicyAdmin.defaults(), markup=False)
        return
    with operator_session(settings_from(config)) as bastion:
        _, text = bastion.policies.text(operator_context(), version)
    out.print(text, markup=False)

"""``bastion audit search``: read the audit log as the local operator (authorized and audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, out
from bastion.spine import Outcome

app = typer.Typer(help="Read the audit log.", no_args_is_help=True)


@app.command("search")
def search(
    actor: Annotated[str | None, typer.Option(help="Principal id.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, e.g. audit.read.")] = None,
    resource_type: Annotated[str | None, typer.Option("--resource-type")] = None,
    resource_id: Annotated[str | None, typer.Option("--resource-id")] = None,
    outcome: Annotated[Outcome | None, typer.Option(case_sensitive=False)] = None,
    since: Annotated[
        datetime | None, typer.Option(help="ISO time with timezone.", formats=["%Y-%m-%dT%H:%M:%S%z"])
    ] = None,
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%dT%H:%M:%S%z"])] = None,
    after_seq: Annotated[int | None, typer.Option("--after-seq", min=0)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Search audit events, oldest first, a page at a time."""
    query = AuditFilter(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    with operator_session(settings_from(config)) as bastion:
        page = bastion.audit.search(operator_context(), query)
    if json:
        emit_json(
            {"events": [event.as_json() for event in page.events], "next_after_seq": page.next_after_seq}
        )
        return
    table = Table("seq", "time", "actor", "action", "resource", "outcome", "reason", box=None)
    for event in page.events:
        table.add_row(
            str(event.seq),
            event.occurred_at.isoformat(timespec="seconds"),
            event.actor_id,
            event.action,
            f"{event.resource_type}/{event.resource_id}",
            event.outcome,
            event.reason,
        )
    out.print(table)
    if page.next_after_seq is not None:
        out.print(f"More: --after-seq {page.next_after_seq}")

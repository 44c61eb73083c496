"""``bastion audit search``: read the audit log as the local operator (authorized and audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, err, out
from bastion.core.errors import ExitCode
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


@app.command("verify")
def verify(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Recompute the log from its leaves; check every checkpoint and the witness. Exit 10 if tampered."""
    with operator_session(settings_from(config)) as bastion:
        report = bastion.trail.verify(operator_context())
    if json:
        emit_json(report.as_json())
    elif report.ok:
        out.print(
            f"OK: {report.events_checked} events, {report.checkpoints_checked} checkpoints, "
            f"{report.witnessed_checked} witnessed checkpoints verified (tree size {report.tree_size})."
        )
    else:
        err.print(f"[bold red]TAMPERED[/]: first bad sequence number: {report.first_bad_seq}")
        for problem in report.problems:
            err.print(f"  - {escape(problem)}")
    if not report.ok:
        raise typer.Exit(int(ExitCode.FINDING))


@app.command("checkpoint")
def checkpoint(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Sign the current tree head now and publish it to the witness."""
    with operator_session(settings_from(config)) as bastion:
        signed = bastion.trail.checkpoint(operator_context())
    if json:
        emit_json({"tree_size": signed.size, "root_hash": signed.root_hash.hex(), "note": signed.note})
    else:
        out.print(signed.note, end="", markup=False)


@app.command("key")
def key(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Print the verifier key that checks this log's checkpoints (public; pin it in your verifier)."""
    with operator_session(settings_from(config)) as bastion:
        verifier_key = bastion.trail.verifier_key()
    if json:
        emit_json({"verifier_key": verifier_key})
    else:
        out.print(verifier_key, markup=False)


@app.command("prove")
def prove(
    seq: Annotated[int, typer.Option("--seq", min=0, help="Sequence number of the event.")],
    tree_size: Annotated[
        int | None,
        typer.Option(
            "--tree-size", min=1, help="Checkpoint size to prove against (default: the latest checkpoint)."
        ),
    ] = None,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Print an inclusion proof of event SEQ against a signed checkpoint (always JSON)."""
    del json  # a proof is data for a verifier: always JSON
    with operator_session(settings_from(config)) as bastion:
        proof = bastion.trail.prove_inclusion(operator_context(), seq, tree_size)
    emit_json(proof.as_json())


@app.command("consistency")
def consistency(
    first: Annotated[int, typer.Option("--from", min=1, help="The older tree size.")],
    second: Annotated[int, typer.Option("--to", min=1, help="The newer tree size.")],
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Print a consistency proof that the tree of size TO extends the tree of size FROM (always JSON)."""
    del json
    with operator_session(settings_from(config)) as bastion:
        proof = bastion.trail.prove_consistency(operator_context(), first, second)
    emit_json(proof.as_json())


@app.command("export")
def export(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Deliver pending audit events to every configured SIEM sink once (the server does this continuously)."""
    with operator_session(settings_from(config)) as bastion:
        statuses = bastion.exporter.run_once(operator_context())
    if json:
        emit_json([vars(status) for status in statuses])
    else:
        if not statuses:
            out.print("No audit sinks are configured (audit_sinks in bastion.toml).")
        for status in statuses:
            state = f"failing: {escape(status.error)}" if status.error else "ok"
            out.print(f"{status.name}: delivered {status.delivered}, next seq {status.next_seq}, {state}")
    if any(status.error for status in statuses):
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


@app.command("prune")
def prune_events(
    before: Annotated[
        int,
        typer.Option(
            "--before", min=1, help="Remove events below this tree size (must be a checkpoint's size)."
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go; change nothing.")] = False,
    config: ConfigOption = None,
    json: JsonOption = False,
) -> None:
    """Prune old events behind a retained checkpoint; the log stays verifiable."""
    with operator_session(settings_from(config)) as bastion:
        plan = bastion.trail.prune(operator_context(), before, dry_run=dry_run)
    if json:
        emit_json({"before": plan.before, "events": plan.events, "dry_run": plan.dry_run})
    else:
        verb = "Would remove" if plan.dry_run else "Removed"
        out.print(f"{verb} {plan.events} events below {plan.before}.")

"""``bastion lineage ...`` and ``bastion data requests ...``: where data went, and data-subject rights."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, emit_rows, out
from bastion.cli.registry_cmd import version_ref
from bastion.core.errors import InvalidInput
from bastion.data.records import parse_ref
from bastion.governance.lineage import Graph
from bastion.governance.subjects import RequestInfo

lineage = typer.Typer(help="Lineage: datasets, derived datasets and the models trained on them.")
requests = typer.Typer(help="Data-subject requests: access, erasure, rectification (one month to answer).")


def _print_graph(graph: Graph, json_output: bool) -> None:
    if json_output:
        emit_json(graph.as_json())
        return
    for node in graph.nodes.values():
        extra = " (deleted)" if node.get("deleted") else ""
        transforms = f" [{', '.join(node['transforms'])}]" if node.get("transforms") else ""
        out.print(f"{node['id']}{transforms}{extra}")
    for edge in graph.edges:
        out.print(f"  {edge['from']} --{edge['relation']}--> {edge['to']}")


@lineage.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="MODEL@VERSION")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """What a model version was trained on, and where that data came from."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        graph = bastion.lineage.model(operator_context(), name, version)
    _print_graph(graph, json_output)


@lineage.command("impact")
def impact(
    ref: Annotated[str, typer.Argument(help="DATASET@VERSION (default: the latest)")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Everything derived or trained from a dataset version."""
    name, version = parse_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        graph = bastion.lineage.impact(operator_context(), name, version)
    _print_graph(graph, json_output)


def _request_doc(info: RequestInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "kind": info.kind,
        "status": info.status,
        "due_at": info.due_at.isoformat(),
        "overdue": info.overdue,
        "created_by": info.created_by,
        "completed_at": info.completed_at.isoformat() if info.completed_at else None,
        "result": info.result,
    }


@requests.command("create")
def create(
    kind: Annotated[str, typer.Option("--kind", help="access, erasure or rectification.")],
    subject: Annotated[
        str,
        typer.Option(
            "--subject", prompt=True, hide_input=True, help="The subject's identifier (prompted if omitted)."
        ),
    ],
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="FIELD=VALUE, repeatable (rectification).")
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register a request; it is due in one month. The identifier is kept sealed until it is answered."""
    changes: dict[str, Any] = {}
    for item in set_values or []:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise InvalidInput("--set takes FIELD=VALUE.")
        changes[field] = value
    with operator_session(settings_from(config)) as bastion:
        info = bastion.subjects.register(operator_context(), kind, subject, changes or None)
    if json_output:
        emit_json(_request_doc(info))
    else:
        out.print(f"Registered {info.kind} request {info.id}, due {info.due_at:%Y-%m-%d}.")


@requests.command("list")
def list_requests(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only those past their deadline.")] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Data-subject requests and their deadlines."""
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.subjects.requests(operator_context(), overdue_only=overdue)
    rows = [
        {"id": i.id, "kind": i.kind, "status": i.status, "due": f"{i.due_at:%Y-%m-%d}", "overdue": i.overdue}
        for i in infos
    ]
    if json_output:
        emit_json([_request_doc(i) for i in infos])
    else:
        emit_rows(rows, ("Id", "Kind", "Status", "Due", "Overdue"), False)


@requests.command("run")
def run(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Answer a request across every retained dataset version: export the subject's records (access), or
    rewrite the affected versions without them (erasure) or corrected (rectification), shred the old
    versions, and flag the model versions trained on them for retraining review."""
    with operator_session(settings_from(config)) as bastion:
        outcome = bastion.subjects.run(operator_context(), request_id)
    document = {**_request_doc(outcome.request), "records": outcome.records}
    if json_output:
        emit_json(document)
        return
    result = outcome.request.result or {}
    if outcome.records:
        emit_json(outcome.records)
    out.print(
        f"{outcome.request.kind} {outcome.request.id}: versions replaced {result.get('versions_replaced')}, "
        f"models flagged for review {result.get('models_flagged')}"
    )

"""``bastion data ...``: datasets, secure ingestion, purpose-bound export, re-identification, and the PII
engine, as the local operator. A rejected upload exits 10 after its quarantine report is stored."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, emit_rows, out, transfer_progress
from bastion.core.errors import InvalidInput
from bastion.data.export import ExportFormat
from bastion.data.privacy import DpQuery
from bastion.data.records import DatasetVersionInfo, parse_ref

app = typer.Typer(
    help="Datasets: schemas, secure ingestion, purpose-bound export, PII.", no_args_is_help=True
)
_BLOCK = 1 << 20
_FORMATS: dict[str, ExportFormat] = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
Name = Annotated[str, typer.Argument(help="The dataset.")]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path} is not a readable JSON document: {error}") from None


def _version_doc(info: DatasetVersionInfo) -> dict[str, Any]:
    return {
        "dataset": info.dataset,
        "version": info.version,
        "sha256": info.sha256,
        "rows": info.rows,
        "size": info.size,
        "source": info.report.get("source"),
        "classification_suggestions": info.report.get("classification_suggestions", []),
        "created_by": info.created_by,
        "created_at": info.created_at.isoformat(),
    }


@app.command("create")
def create(
    name: Name,
    schema: Annotated[Path, typer.Option("--schema", exists=True, dir_okay=False, help="The schema (JSON).")],
    purpose: Annotated[
        list[str], typer.Option("--purpose", help="A purpose the dataset serves; repeatable.")
    ],
    region: Annotated[str, typer.Option("--region", help="Where the data must reside, e.g. eu-west-1.")],
    retention_days: Annotated[int | None, typer.Option("--retention-days")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a dataset with its schema (fields, classifications, categories, transforms)."""
    with operator_session(settings_from(config)) as bastion:
        info = bastion.datasets.create(
            operator_context(),
            name,
            _read_json(schema),
            purposes=purpose,
            region=region,
            description=description,
            retention_days=retention_days,
        )
    if json_output:
        emit_json(
            {"name": info.name, "classification": info.schema.classification, "purposes": info.purposes}
        )
    else:
        out.print(f"Created dataset {info.name} ({info.schema.classification}, {info.region})")


@app.command("list")
def list_datasets(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Every dataset."""
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.datasets.list_datasets(operator_context())
    rows = [
        {
            "name": i.name,
            "classification": i.schema.classification,
            "region": i.region,
            "purposes": ",".join(i.purposes),
            "owner": i.created_by,
        }
        for i in infos
    ]
    emit_rows(rows, ("NAME", "CLASSIFICATION", "REGION", "PURPOSES", "OWNER"), json_output)


@app.command("show")
def show(name: Name, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """A dataset's schema and versions (with the latest version's classification suggestions)."""
    with operator_session(settings_from(config)) as bastion:
        info, versions = bastion.datasets.describe(operator_context(), name)
    document = {
        "name": info.name,
        "classification": info.schema.classification,
        "purposes": list(info.purposes),
        "region": info.region,
        "retention_days": info.retention_days,
        "schema": info.schema.model_dump(mode="json", exclude_none=True),
        "versions": [_version_doc(v) for v in versions],
    }
    if json_output:
        emit_json(document)
        return
    out.print(f"{info.name}: {info.schema.classification}, {info.region}, for {', '.join(info.purposes)}")
    for version in versions:
        digest = version.sha256[:16]
        out.print(f"  @{version.version}  {version.rows} rows  sha256:{digest}…  by {version.created_by}")
    if versions:
        for suggestion in versions[-1].report.get("classification_suggestions", []):
            flag = "UNDERSTATED" if suggestion["understated"] else "ok"
            out.print(
                f"  {flag}: {suggestion['field']} holds {sorted(suggestion['detected'])} -> "
                f"{suggestion['suggested_classification']} {suggestion['suggested_categories']}"
            )


@app.command("schema")
def set_schema(
    name: Name,
    schema: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The new schema (JSON).")],
    config: ConfigOption = None,
) -> None:
    """Replace a dataset's schema (how a data steward confirms classification suggestions)."""
    with operator_session(settings_from(config)) as bastion:
        info = bastion.datasets.set_schema(operator_context(), name, _read_json(schema))
    out.print(f"Schema of {info.name} updated ({info.schema.classification}).")


@app.command("ingest")
def ingest(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset this becomes a version of.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check and store a file (CSV, JSON, JSON Lines, Parquet, or a zip of one) as a new dataset version."""
    ops = operator_context()
    with (
        operator_session(settings_from(config)) as bastion,
        bastion.data_ingest.receive(ops, dataset, path.name) as upload,
        transfer_progress("uploading", path) as advance,
        path.open("rb") as source,
    ):
        while block := source.read(_BLOCK):
            upload.write(block)
            advance(len(block))
        info = bastion.data_ingest.accept(ops, upload)
    if json_output:
        emit_json(_version_doc(info))
    else:
        out.print(f"Stored {info.ref}: {info.rows} rows, sha256:{info.sha256}")


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest).")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why: one of the purposes the dataset serves.")],
    out_path: Annotated[Path, typer.Option("--out", dir_okay=False, help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "csv",
    to_region: Annotated[
        str | None,
        typer.Option("--to-region", help="Where the file goes, if not the dataset's region (residency)."),
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Export a version for a declared purpose: fields it does not need dropped, export transforms applied."""
    if fmt not in _FORMATS:
        raise InvalidInput("--format is csv, jsonl or parquet.")
    name, version = parse_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        context = replace(operator_context(purpose), destination=to_region)
        report = bastion.data_export.export(context, name, version, _FORMATS[fmt], out_path)
    if json_output:
        emit_json(
            {
                "path": str(out_path),
                "version": report.version,
                "rows": report.rows,
                "dropped": report.dropped,
                "k_anonymity": report.k_anonymity,
            }
        )
    else:
        out.print(
            f"Wrote {report.rows} rows of {name}@{report.version} to {out_path} (dropped: {report.dropped})"
        )


@app.command("quarantine")
def quarantine(name: Name, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Uploads that were rejected, with their reports."""
    with operator_session(settings_from(config)) as bastion:
        entries = bastion.datasets.quarantined(operator_context(), name)
    if json_output:
        emit_json(entries)
    else:
        rows = [{"at": e["at"], "file": e["filename"], "reason": e["reason"], "by": e["by"]} for e in entries]
        emit_rows(rows, ("AT", "FILE", "REASON", "BY"), False)


@app.command("reidentify")
def reidentify(
    name: Name,
    field: Annotated[str, typer.Option("--field")],
    token: Annotated[str, typer.Option("--token", help="The pseudonym (ps_...).")],
    config: ConfigOption = None,
) -> None:
    """The value behind a pseudonym (data stewards; audited)."""
    with operator_session(settings_from(config)) as bastion:
        value = bastion.datasets.reidentify(operator_context(), name, field, token)
    out.print(value)


@app.command("pii")
def pii(
    text: Annotated[
        str | None, typer.Argument(help="Text to analyse; '-' or none reads standard input.")
    ] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", help="Only these types; repeatable.")
    ] = None,
    threshold: Annotated[float, typer.Option("--threshold", min=0, max=1)] = 0.4,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Find PII and secrets in text with Bastion's engine (exit 10 when something is found)."""
    body = sys.stdin.read() if text is None or text == "-" else text
    with operator_session(settings_from(config)) as bastion:
        results = bastion.datasets.analyze(operator_context(), bastion.pii, body, entity, threshold)
        status = bastion.pii.ner_status
    if json_output:
        emit_json({"results": [r.to_dict() for r in results], "ner": status})
    else:
        for r in results:
            out.print(f"{r.entity_type:<18} {r.start:>6}-{r.end:<6} {r.score:.2f}  {body[r.start : r.end]!r}")
        out.print(f"({len(results)} found; NER {status})")
    if results:
        raise typer.Exit(10)


@app.command("query")
def query(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest).")],
    kind: Annotated[str, typer.Option("--kind", help="count, sum, mean, histogram or quantile.")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="What this answer may cost (> 0).")],
    field: Annotated[str | None, typer.Option("--field", help="The field (all but count).")] = None,
    mechanism: Annotated[str, typer.Option("--mechanism", help="laplace or gaussian.")] = "laplace",
    delta: Annotated[float, typer.Option("--delta", help="The Gaussian mechanism's delta.")] = 0.0,
    q: Annotated[float | None, typer.Option("--q", help="The quantile, in (0, 1).")] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """A differentially private aggregate, charged to your privacy budget on the dataset."""
    try:
        request = DpQuery.model_validate(
            {"kind": kind, "field": field, "epsilon": epsilon, "mechanism": mechanism, "delta": delta, "q": q}
        )
    except ValidationError as error:
        raise InvalidInput(f"Invalid query: {error.errors()[0]['msg']}") from None
    name, version = parse_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        answer = bastion.private_queries.query(operator_context(), name, version, request)
    document = {
        "dataset": answer.dataset,
        "version": answer.version,
        "query": answer.query,
        "value": answer.value,
        "mechanism": answer.mechanism,
        "scale": answer.scale,
        "spent": {"epsilon": answer.spent.epsilon, "delta": answer.spent.delta},
        "budget": answer.budget.model_dump(),
    }
    if json_output:
        emit_json(document)
    else:
        out.print(
            f"{kind} = {answer.value} (noise scale {answer.scale:.4g}); spent epsilon "
            f"{answer.spent.epsilon:.4g} of {answer.budget.epsilon:g}"
        )


@app.command("budget")
def budget(name: Name, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """What each consumer has spent of its privacy budget on a dataset (composed)."""
    with operator_session(settings_from(config)) as bastion:
        spent = bastion.private_queries.spent(operator_context(), name)
    rows = [
        {"consumer": c, "epsilon": s.epsilon, "delta": s.delta, "queries": s.queries}
        for c, s in spent.items()
    ]
    emit_rows(rows, ("Consumer", "Epsilon", "Delta", "Queries"), json_output)


retention_app = typer.Typer(help="Retention: delete expired dataset versions, with certificates.")
app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Crypto-shred every dataset version past its retention; each deletion writes a certificate to the
    audit log. The server runs this on its own every ``data_retention_interval_s``."""
    with operator_session(settings_from(config)) as bastion:
        certificates = bastion.retention.run(operator_context(), dry_run=dry_run)
    rows = [
        {
            "dataset": c["dataset"],
            "version": c["version"],
            "sha256": c["sha256"],
            "expired_at": c["expired_at"],
            "policy": f"{c['policy']['retention_days']} days ({c['policy']['source']})",
        }
        for c in certificates
    ]
    if json_output:
        emit_json(certificates)
    else:
        verb = "Would delete" if dry_run else "Deleted"
        out.print(f"{verb} {len(rows)} version(s).")
        emit_rows(rows, ("Dataset", "Version", "SHA-256", "Expired at", "Policy"), False)


@app.command("synthesize")
def synthesize_cmd(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest).")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="What the release may cost (> 0).")],
    rows: Annotated[int, typer.Option("--rows", help="How many synthetic rows.")],
    out_path: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Where to write them (JSON Lines).")
    ],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Differentially private synthetic rows from noisy marginals, charged to your budget, with a utility
    report against the original (fields without a declared domain are left out)."""
    name, version = parse_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        made, report, spent = bastion.private_queries.synthesize(
            operator_context(), name, version, epsilon, rows, with_utility=True
        )
    out_path.write_text("".join(json.dumps(row) + "\n" for row in made.rows), encoding="utf-8")
    document = {
        "path": str(out_path), "rows": len(made.rows), "epsilon": made.epsilon, "fields": made.fields,
        "omitted": made.omitted, "utility": report, "spent": {"epsilon": spent.epsilon},
    }  # fmt: skip
    if json_output:
        emit_json(document)
    else:
        out.print(f"Wrote {len(made.rows)} synthetic rows to {out_path} (epsilon {made.epsilon:g}).")
        out.print(f"Left out (no declared domain): {', '.join(made.omitted) or 'nothing'}")
        out.print(f"Utility: {json.dumps(report)}")

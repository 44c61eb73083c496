"""``bastion models ...``: the model registry from the command line, as the local operator.

Exit codes follow the rest of the CLI; a push whose artifact fails its scan exits 10 (unsafe) or 11 (could
not be scanned), after the quarantined record and its report are stored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.app.container import operator_context
from bastion.cli.common import ConfigOption, JsonOption, operator_session, settings_from
from bastion.cli.output import emit_json, emit_rows, out, transfer_progress
from bastion.core.digests import file_digest
from bastion.core.errors import InvalidInput
from bastion.models.gates import GatePolicy, Threshold
from bastion.models.intake import ThirdParty
from bastion.models.provenance import DatasetRef, environment_sbom
from bastion.models.records import VersionInfo, parse_ref
from bastion.models.registry import GLOBAL_GATE

Ref = Annotated[str, typer.Argument(help="NAME@VERSION")]
_BLOCK = 1 << 20
_METRIC = re.compile(r"^([A-Za-z0-9_.:-]{1,64})(>=|<=|=)(-?[0-9.eE+-]+)$")


def version_ref(ref: str) -> tuple[str, int]:
    name, version = parse_ref(ref)
    if version is None:
        raise InvalidInput(f"Name a version: {name}@VERSION.")
    return name, version


def _version_doc(info: VersionInfo) -> dict[str, Any]:
    return {
        "model": info.model,
        "version": info.version,
        "stage": info.stage,
        "origin": info.origin,
        "filename": info.filename,
        "size": info.size,
        "sha256": info.sha256,
        "format": info.format,
        "scan": {"verdict": info.scan_verdict, "accepted_by": info.scan_accepted_by, **info.scan_report},
        "signed": info.signed,
        "provenance": info.provenance["statement"]["predicate"] if info.provenance else None,
        "provenance_missing": info.provenance["missing"] if info.provenance else None,
        "input_schema": info.input_schema,
        "evaluation": info.evaluation,
        "gate": info.gate_result,
        "source": info.source,
        "vetted_by": info.vetted_by,
        "approvals": list(info.approvals),
        "history": [
            {"from": h.from_stage, "to": h.to_stage, "by": h.by, "at": h.at.isoformat(), "reason": h.reason}
            for h in info.history
        ],
        "created_by": info.created_by,
        "created_at": info.created_at.isoformat(),
        "shredded": info.shredded,
        "archived": info.archived,
    }


def _show(info: VersionInfo, json_output: bool) -> None:
    if json_output:
        emit_json(_version_doc(info))
        return
    out.print(f"{info.ref}  {info.stage}  {info.filename}  {info.size} bytes  sha256:{info.sha256[:16]}…")
    out.print(
        f"  scan: {info.scan_verdict} ({info.format})"
        + (" — accepted by policy" if info.scan_accepted_by else "")
    )
    for finding in info.scan_report.get("findings", [])[:10]:
        where = f"{finding['location']} {finding.get('global_name') or ''}"
        out.print(f"    {finding['severity']}: {finding['code']} at {where}")
    if info.gate_result:
        out.print(f"  gate: {'passed' if info.gate_result['passed'] else 'NOT passed'}")
        for check in info.gate_result["checks"]:
            out.print(f"    {'ok ' if check['passed'] else 'NO '} {check['name']}: {check['detail']}")
    if info.approvals:
        out.print(f"  approved by: {', '.join(info.approvals)}")


app = typer.Typer(
    help="The model registry, and model signatures (OpenSSF Model Signing format).", no_args_is_help=True
)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument()],
    description: Annotated[str, typer.Option("--description")] = "",
    classification: Annotated[str, typer.Option("--classification")] = "internal",
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register a model name (its versions are pushed separately)."""
    with operator_session(settings_from(config)) as bastion:
        info = bastion.models.create(
            operator_context(), name, description=description, classification=classification
        )
    if json_output:
        emit_json({"name": info.name, "classification": info.classification})
    else:
        out.print(f"Created model {info.name} ({info.classification})")


@app.command("list")
def list_models(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Every registered model."""
    with operator_session(settings_from(config)) as bastion:
        models = bastion.models.list_models(operator_context())
    rows = [
        {
            "name": m.name,
            "classification": m.classification,
            "created_by": m.created_by,
            "description": m.description,
        }
        for m in models
    ]
    emit_rows(rows, ("NAME", "CLASSIFICATION", "CREATED BY", "DESCRIPTION"), json_output)


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument()], config: ConfigOption = None, json_output: JsonOption = False
) -> None:
    """A model's versions and their stages."""
    with operator_session(settings_from(config)) as bastion:
        infos = bastion.models.versions(operator_context(), name)
    rows = [
        {
            "version": i.version,
            "stage": i.stage,
            "scan": i.scan_verdict,
            "sha256": i.sha256[:16],
            "by": i.created_by,
        }
        for i in infos
    ]
    emit_rows(rows, ("VERSION", "STAGE", "SCAN", "SHA256", "BY"), json_output)


@app.command("show")
def show(ref: Ref, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """One version: scan report, signature, provenance, gate result, approvals, stage history."""
    name, version = parse_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.version(operator_context(), name, version), json_output)


@app.command("push")
def push(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    model: Annotated[str, typer.Option("--model", help="The registered model this is a version of.")],
    provenance: Annotated[
        Path | None, typer.Option("--provenance", help="JSON: datasets, hyperparameters, code, metrics.")
    ] = None,
    sbom: Annotated[
        bool,
        typer.Option(
            "--sbom", help="Record this Python environment (CycloneDX) as the training environment."
        ),
    ] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a version: streamed, scanned (never loaded), stored encrypted and signed if clean."""
    document = _provenance(provenance, sbom)
    _upload(path, model, None, document, config, json_output)


@app.command("import")
def import_model(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    model: Annotated[str, typer.Option("--model")],
    sha256: Annotated[str, typer.Option("--sha256", help="The digest the artifact must have (pinned).")],
    source: Annotated[str, typer.Option("--source", help="Where it comes from (URL).")],
    licence: Annotated[str, typer.Option("--licence", help="Its licence (SPDX id).")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Import a third-party model: pinned digest, source and licence recorded, scanned, needs vetting."""
    _upload(path, model, ThirdParty(sha256.lower(), source, licence), None, config, json_output)


@app.command("provenance")
def provenance_cmd(
    ref: Ref,
    document: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    sbom: Annotated[bool, typer.Option("--sbom")] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Bind a training run's provenance to a version (a signed in-toto statement)."""
    name, version = version_ref(ref)
    provenance = _provenance(document, sbom)
    assert provenance is not None  # noqa: S101 - a document path was given
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.record_provenance(operator_context(), name, version, provenance), json_output)


@app.command("input-schema")
def input_schema_cmd(
    ref: Ref,
    document: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Declare a version's input schema (JSON Schema of one row: types, ranges, categories), before approval;
    the gateway validates every request against it."""
    name, version = version_ref(ref)
    schema = _json_object(document)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.declare_input_schema(operator_context(), name, version, schema), json_output)


@app.command("evaluate")
def evaluate(
    ref: Ref,
    dataset: Annotated[
        Path, typer.Option("--dataset", exists=True, dir_okay=False, help="The holdout file.")
    ],
    metric: Annotated[list[str], typer.Option("--metric", help="NAME=VALUE, repeatable.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Record holdout metrics measured on DATASET (identified by its SHA-256) for the version's gate."""
    name, version = version_ref(ref)
    metrics = {}
    for item in metric:
        key, _, value = item.partition("=")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            raise InvalidInput(f"--metric {item!r} is not NAME=NUMBER.") from None
    digest = file_digest(dataset)
    with operator_session(settings_from(config)) as bastion:
        info = bastion.models.record_evaluation(
            operator_context(), name, version, DatasetRef(name=dataset.name, sha256=digest), metrics
        )
    _show(info, json_output)


@app.command("approve")
def approve(
    ref: Ref,
    comment: Annotated[str, typer.Option("--comment")] = "",
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve a version for its gate (never one's own)."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.approve(operator_context(), name, version, comment), json_output)


@app.command("vet")
def vet(
    ref: Ref,
    comment: Annotated[str, typer.Option("--comment")] = "",
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sign off a third-party version as vetted (never one's own import)."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.vet(operator_context(), name, version, comment), json_output)


@app.command("promote")
def promote(
    ref: Ref,
    to: Annotated[str, typer.Option("--to", help="approved (runs the gate) or production.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move a version to approved (when its gate passes) or to production."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.promote(operator_context(), name, version, to), json_output)


@app.command("quarantine")
def quarantine(
    ref: Ref,
    reason: Annotated[str, typer.Option("--reason")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Stop a version from loading at once."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(bastion.models.quarantine(operator_context(), name, version, reason), json_output)


@app.command("retire")
def retire(
    ref: Ref,
    reason: Annotated[str, typer.Option("--reason")],
    archive: Annotated[bool, typer.Option("--archive", help="Keep a copy under the archive key.")] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Retire for good: no loads or downloads; its key is destroyed (crypto-shredding)."""
    name, version = version_ref(ref)
    with operator_session(settings_from(config)) as bastion:
        _show(
            bastion.models.retire(operator_context(), name, version, reason=reason, archive=archive),
            json_output,
        )


@app.command("download")
def download(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, or NAME for the production version.")],
    out_dir: Annotated[Path, typer.Option("--out", file_okay=False, help="Directory to write into.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write a verified version and its OMS signature (model.sig) into OUT."""
    name, version = parse_ref(ref)
    ops = operator_context()
    with operator_session(settings_from(config)) as bastion:
        with bastion.loader.open(ops, name, version, action="models.download") as loaded:
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / loaded.info.filename
            with loaded.path.open("rb") as src, target.open("wb") as dst:
                while block := src.read(_BLOCK):
                    dst.write(block)
        (out_dir / "model.sig").write_bytes(bastion.models.signature(ops, name, loaded.info.version))
    if json_output:
        emit_json(
            {"path": str(target), "signature": str(out_dir / "model.sig"), "sha256": loaded.info.sha256}
        )
    else:
        out.print(
            f"Wrote {target} and {out_dir / 'model.sig'} (verify: bastion models public-key > pub.pem; "
            f"model_signing verify key --signature {out_dir / 'model.sig'} --public_key pub.pem {target})"
        )


@app.command("public-key")
def public_key(config: ConfigOption = None) -> None:
    """The registry's signing key (PEM), to verify downloaded models with model_signing."""
    with operator_session(settings_from(config)) as bastion:
        pem = bastion.models.public_key(operator_context())
    out.print(pem.decode().rstrip())


gate = typer.Typer(
    help="Approval gates (per model, or '*' for every model without its own).", no_args_is_help=True
)
app.add_typer(gate, name="gate")


@gate.command("show")
def gate_show(name: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """The gate that applies to NAME."""
    with operator_session(settings_from(config)) as bastion:
        emit_json(bastion.models.gate(operator_context(), name).model_dump(mode="json", exclude_none=True))


@gate.command("set")
def gate_set(
    scope: Annotated[str, typer.Argument(help="A model name, or '*'.")],
    approvals: Annotated[int, typer.Option("--approvals", min=1, max=10)] = 1,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="e.g. auc>=0.9 or loss<=0.3")] = None,
    provenance: Annotated[bool, typer.Option("--provenance/--no-provenance")] = True,
    config: ConfigOption = None,
) -> None:
    """Set the checks a version needs before it may be approved."""
    thresholds: dict[str, Threshold] = {}
    for item in metric or []:
        match = _METRIC.fullmatch(item.replace(" ", ""))
        if not match:
            raise InvalidInput(f"--metric {item!r} is not NAME>=N, NAME<=N or NAME=N.")
        key, op, value = match.group(1), match.group(2), float(match.group(3))
        current = thresholds.get(key, Threshold(min=value) if op != "<=" else Threshold(max=value))
        if op in (">=", "="):
            current = current.model_copy(update={"min": value})
        if op in ("<=", "="):
            current = current.model_copy(update={"max": value})
        thresholds[key] = current
    policy = GatePolicy(approvals=approvals, require_provenance=provenance, metrics=thresholds)
    with operator_session(settings_from(config)) as bastion:
        saved = bastion.models.set_gate(operator_context(), scope if scope != "*" else GLOBAL_GATE, policy)
    emit_json(saved.model_dump(mode="json", exclude_none=True))


def _provenance(path: Path | None, sbom: bool) -> dict[str, Any] | None:
    if path is None and not sbom:
        return None
    document = _json_object(path) if path is not None else {}
    if sbom:
        document["environment"] = environment_sbom()
    return document


def _json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path} is not a readable JSON document: {error}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} must hold a JSON object.")
    return document


def _upload(
    path: Path,
    model: str,
    third_party: ThirdParty | None,
    provenance: dict[str, Any] | None,
    config: Path | None,
    json_output: bool,
) -> None:
    ops = operator_context()
    with (
        operator_session(settings_from(config)) as bastion,
        bastion.intake.receive(ops, model, path.name, third_party=third_party) as upload,
        transfer_progress("uploading", path) as advance,
        path.open("rb") as source,
    ):
        while block := source.read(_BLOCK):
            upload.write(block)
            advance(len(block))
        info = bastion.intake.accept(ops, upload, third_party=third_party, provenance=provenance)
    _show(info, json_output)

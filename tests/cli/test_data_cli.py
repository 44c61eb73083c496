"""``bastion data ...`` as an operator uses it: create, ingest (and a rejected file), show, export, pii."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from bastion.core.errors import ExitCode
from tests.cli.test_models_cli import run
from tests.data.conftest import CSV, SCHEMA


def test_create_ingest_show_export(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    schema, data, bad = tmp_path / "schema.json", tmp_path / "customers.csv", tmp_path / "evil.csv"
    schema.write_text(json.dumps(SCHEMA))
    data.write_text(CSV)
    bad.write_bytes(pickle.dumps({"x": 1}, protocol=2))
    assert run(capsys, "init")[0] == ExitCode.OK
    create = [
        "data",
        "create",
        "customers",
        "--schema",
        str(schema),
        "--purpose",
        "analytics",
        "--region",
        "eu",
    ]
    assert run(capsys, *create)[0] == ExitCode.OK
    code, out, err = run(capsys, "data", "ingest", str(data), "--dataset", "customers", "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["rows"] == 3
    code, _, err = run(capsys, "data", "ingest", str(bad), "--dataset", "customers")
    assert code == ExitCode.FINDING and "data.pickle" in err
    code, out, _ = run(capsys, "data", "quarantine", "customers", "--json")
    assert [q["reason"] for q in json.loads(out)] == ["data.pickle"]
    code, out, _ = run(capsys, "data", "show", "customers", "--json")
    shown = json.loads(out)
    suggestions = {s["field"]: s for s in shown["versions"][0]["classification_suggestions"]}
    assert suggestions["card"]["suggested_categories"] == ["PCI"]
    target = tmp_path / "out.csv"
    export = ["data", "export", "customers@1", "--purpose", "analytics", "--out", str(target), "--json"]
    code, out, _ = run(capsys, *export)
    assert code == ExitCode.OK and json.loads(out)["dropped"] == ["card"]  # needed for billing only
    assert "card" not in target.read_text().splitlines()[0].split(",")
    code, _, err = run(capsys, "data", "export", "customers", "--purpose", "marketing", "--out", str(target))
    assert code == ExitCode.DENIED
    code, out, _ = run(capsys, "data", "pii", "mail ann@example.com", "--json")
    assert code == ExitCode.FINDING and json.loads(out)["results"][0]["entity_type"] == "EMAIL_ADDRESS"
    assert run(capsys, "data", "pii", "nothing here")[0] == ExitCode.OK

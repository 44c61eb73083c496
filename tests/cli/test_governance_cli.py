"""The data-protection commands as an operator uses them: a DP query and the budget, retention (dry run),
a data-subject erasure in one command, and lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.core.errors import ExitCode
from tests.cli.test_models_cli import run
from tests.data.conftest import CSV
from tests.governance.conftest import CUSTOMERS, SUBJECT


def test_query_budget_retention_erasure_lineage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    schema, data = tmp_path / "schema.json", tmp_path / "customers.csv"
    schema.write_text(json.dumps({**CUSTOMERS, "privacy_budget": {"epsilon": 1.0}}))
    data.write_text(CSV)
    assert run(capsys, "init")[0] == ExitCode.OK
    create = ["data", "create", "customers", "--schema", str(schema), "--purpose", "analytics"]
    assert run(capsys, *create, "--region", "eu", "--retention-days", "30")[0] == ExitCode.OK
    assert run(capsys, "data", "ingest", str(data), "--dataset", "customers")[0] == ExitCode.OK

    query = ["data", "query", "customers", "--kind", "mean", "--field", "age", "--epsilon", "0.6", "--json"]
    code, out, err = run(capsys, *query)
    assert code == ExitCode.OK, err
    assert json.loads(out)["spent"]["epsilon"] == pytest.approx(0.6)
    code, out, err = run(capsys, *query)
    assert code == ExitCode.DENIED and "budget" in out + err  # 1.2 > 1.0: refused, nothing released
    code, out, _ = run(capsys, "data", "budget", "customers", "--json")
    assert [row["queries"] for row in json.loads(out)] == [1]
    code, _, err = run(capsys, "data", "query", "customers", "--kind", "sum", "--epsilon", "0.1")
    assert code != ExitCode.OK and "needs a field" in err

    synthetic = tmp_path / "synthetic.jsonl"
    synth = ["data", "synthesize", "customers", "--epsilon", "0.3", "--rows", "5", "--out", str(synthetic)]
    code, out, err = run(capsys, *synth, "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["omitted"] and len(synthetic.read_text().splitlines()) == 5
    code, out, _ = run(capsys, "data", "retention", "run", "--dry-run", "--json")
    assert code == ExitCode.OK and json.loads(out) == []  # nothing is 30 days old yet

    code, out, _ = run(
        capsys, "data", "requests", "create", "--kind", "erasure", "--subject", SUBJECT, "--json"
    )
    request = json.loads(out)
    assert code == ExitCode.OK and request["status"] == "open"
    code, out, _ = run(capsys, "data", "requests", "run", request["id"], "--json")
    assert code == ExitCode.OK and json.loads(out)["result"]["versions_replaced"] == ["dataset:customers@1"]
    code, out, _ = run(capsys, "lineage", "impact", "customers@1", "--json")
    edges = json.loads(out)["edges"]
    assert edges == [{"from": "dataset:customers@1", "to": "dataset:customers@2", "relation": "erasure"}]

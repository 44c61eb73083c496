"""``bastion models create|push|show|download|...``: the registry as an operator drives it from a shell."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bastion.core.errors import ExitCode
from tests.cli.test_models_cli import run
from tests.models.conftest import clean_model, malicious_model


def test_push_show_download_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(clean_model())
    provenance = tmp_path / "provenance.json"
    provenance.write_text(
        json.dumps(
            {
                "datasets": [{"name": "train.csv", "sha256": "aa" * 32}],
                "hyperparameters": {"n_estimators": 100},
                "code": {"commit": "abcdef1234567"},
            }
        )
    )
    assert run(capsys, "init")[0] == ExitCode.OK
    assert run(capsys, "models", "create", "churn", "--classification", "internal")[0] == ExitCode.OK
    push = ["models", "push", str(artifact), "--model", "churn", "--provenance", str(provenance)]
    code, out, err = run(capsys, *push, "--sbom", "--json")
    assert code == ExitCode.OK, err
    pushed = json.loads(out)
    assert (pushed["version"], pushed["stage"], pushed["scan"]["verdict"]) == (1, "validated", "clean")
    assert pushed["provenance_missing"] == []  # datasets, code and (from --sbom) the environment
    components = pushed["provenance"]["environment"]["components"]
    assert any(c["name"].lower() == "cryptography" for c in components)

    bad = tmp_path / "weights.bin"
    bad.write_bytes(malicious_model())
    code, _, err = run(capsys, "models", "push", str(bad), "--model", "churn")
    assert code == ExitCode.FINDING and "quarantined" in err
    code, out, _ = run(capsys, "models", "show", "churn@2", "--json")
    shown = json.loads(out)
    assert shown["stage"] == "quarantined" and shown["scan"]["findings"]

    out_dir = tmp_path / "download"
    assert run(capsys, "models", "download", "churn@1", "--out", str(out_dir))[0] == ExitCode.OK
    assert hashlib.sha256((out_dir / "model.pkl").read_bytes()).hexdigest() == pushed["sha256"]
    code, pem, _ = run(capsys, "models", "public-key")
    (tmp_path / "pub.pem").write_text(pem)
    verify = ["models", "verify", str(out_dir / "model.pkl"), "--signature", str(out_dir / "model.sig")]
    assert run(capsys, *verify, "--key", str(tmp_path / "pub.pem"))[0] == ExitCode.OK

    # The operator pushed version 1, so it cannot approve it (separation of duties).
    assert run(capsys, "models", "approve", "churn@1")[0] == ExitCode.DENIED
    code, out, _ = run(capsys, "models", "promote", "churn@1", "--to", "approved", "--json")
    assert code == ExitCode.CONFLICT
    assert run(capsys, "models", "gate", "set", "churn", "--approvals", "2", "--metric", "auc>=0.9")[0] == 0
    code, out, _ = run(capsys, "models", "gate", "show", "churn")
    assert json.loads(out) == {"approvals": 2, "require_provenance": True, "metrics": {"auc": {"min": 0.9}}}
    assert run(capsys, "models", "gate", "set", "churn", "--metric", "auc>0.9")[0] == ExitCode.INVALID_INPUT
    assert run(capsys, "models", "retire", "churn@1", "--reason", "test", "--archive")[0] == ExitCode.OK
    code, _, err = run(capsys, "models", "download", "churn@1", "--out", str(out_dir))
    assert code == ExitCode.FINDING and "retired" in err
    assert run(capsys, "models", "show", "churn@x")[0] == ExitCode.INVALID_INPUT
    assert run(capsys, "models", "push", str(artifact), "--model", "nope")[0] == ExitCode.NOT_FOUND

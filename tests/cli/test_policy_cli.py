"""``bastion roles`` and ``bastion policies`` as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.core.errors import ExitCode


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_roles_and_policies_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "init")[0] == ExitCode.OK
    assert run(capsys, "principals", "create", "user:ann", "--attr", "clearance=confidential")[0] == 0
    code, out, _ = run(
        capsys, "roles", "assign", "user:ann", "operator", "--resource", "key:datasets", "--json"
    )
    assert code == ExitCode.OK
    binding = json.loads(out)["binding_id"]
    code, out, _ = run(capsys, "roles", "show", "user:ann", "--json")
    assert [(r["binding_id"], r["role"], r["resource"]) for r in json.loads(out)] == [
        (binding, "operator", "key:datasets")
    ]
    assert run(capsys, "roles", "assign", "user:ann", "Operator")[0] == ExitCode.INVALID_INPUT
    assert run(capsys, "roles", "unassign", binding)[0] == ExitCode.OK
    assert run(capsys, "roles", "unassign", binding)[0] == ExitCode.NOT_FOUND

    bad = tmp_path / "bad.cedar"
    bad.write_text('@id("x") permit(principal, action == Bastion::Action::"keys.nope", resource);')
    code, _, err = run(capsys, "policies", "validate", str(bad))
    assert code == ExitCode.INVALID_INPUT
    assert "keys.nope" in err
    assert run(capsys, "policies", "set", str(bad))[0] == ExitCode.INVALID_INPUT

    good = tmp_path / "good.cedar"
    good.write_text(
        '@id("ann-reads") permit(principal == Bastion::User::"user:ann", action, resource is Bastion::Key);'
    )
    assert run(capsys, "policies", "validate", str(good))[0] == ExitCode.OK
    assert run(capsys, "policies", "set", str(good), "--comment", "ann reads keys")[0] == ExitCode.OK
    code, out, _ = run(capsys, "policies", "list", "--json")
    assert [(v["version"], v["active"], v["comment"]) for v in json.loads(out)] == [
        (1, True, "ann reads keys")
    ]
    assert run(capsys, "policies", "activate", "0")[0] == ExitCode.OK
    assert run(capsys, "policies", "activate", "7")[0] == ExitCode.NOT_FOUND
    code, out, _ = run(capsys, "policies", "show", "--version", "1")
    assert "ann-reads" in out
    code, out, _ = run(capsys, "policies", "show", "--schema")
    assert 'action "keys.read"' in out
    code, out, _ = run(capsys, "roles", "list", "--json")
    assert "audit.read" in json.loads(out)["auditor"]

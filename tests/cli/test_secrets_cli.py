"""``bastion secrets`` and ``bastion config check`` as an operator uses them (real child processes)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.core.errors import ExitCode

VALUE = "sk-proj-Q1w2E3r4T5y6U7i8O9p0"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_put_exec_and_withholding(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert run(capsys, "init")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(VALUE + "\n"))
    assert run(capsys, "secrets", "put", "providers/openai")[0] == 0
    code, out, _ = run(capsys, "secrets", "get", "providers/openai")
    assert (code, out.strip()) == (0, "**********")
    code, out, _ = run(capsys, "secrets", "get", "providers/openai", "--reveal", "--json")
    assert json.loads(out)["value"] == VALUE

    monkeypatch.setenv("BASTION_PKCS11_PIN", "1234")
    report = tmp_path / "child.json"
    script = (
        "import json, os, sys; json.dump({'key': os.environ.get('OPENAI_API_KEY'), "
        "'pin': os.environ.get('BASTION_PKCS11_PIN')}, open(sys.argv[1], 'w')); sys.exit(7)"
    )
    code, _, _ = run(
        capsys,
        "secrets",
        "exec",
        "--env",
        "OPENAI_API_KEY=providers/openai",
        "--",
        sys.executable,
        "-c",
        script,
        str(report),
    )
    assert code == 7  # the child's own exit code
    seen = json.loads(report.read_text())
    assert seen == {"key": VALUE, "pin": None}  # the secret injected; Bastion's own PIN withheld
    assert run(capsys, "secrets", "exec", "--env", "X=missing", "--", "true")[0] == ExitCode.NOT_FOUND
    assert run(capsys, "secrets", "exec", "--env", "no-equals", "--", "true")[0] == ExitCode.INVALID_INPUT


def test_config_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clean = tmp_path / "clean.toml"
    clean.write_text('port = 8443\nhost = "127.0.0.1"\nstate_dir = "/var/lib/bastion"\n')
    assert run(capsys, "config", "check", str(clean))[0] == 0
    dirty = tmp_path / "dirty.toml"
    dirty.write_text(
        'database_url = "postgresql://app:hunter2@db/bastion"\n'
        'master_key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJ="\n'
        '[[bastion.audit_sinks]]\nname = "siem"\nkind = "hec"\nurl = "https://x"\ntoken = "abc"\n'
        '[extra]\nnote = "AKIAIOSFODNN7EXAMPLE"\nblob = "a8f5f167f44f4964e6c998dee827110c7a8c1f3e9b2d"\n'
    )
    code, out, err = run(capsys, "config", "check", str(dirty), "--json")
    assert code == ExitCode.FINDING
    keys = {finding["key"] for finding in json.loads(out)["findings"]}
    assert keys == {"database_url", "master_key", "bastion.audit_sinks[0].token", "extra.note", "extra.blob"}
    for secret in ("hunter2", "q83vEj", "AKIA", "a8f5f1"):
        assert secret not in out + err

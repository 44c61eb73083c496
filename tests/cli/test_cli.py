"""The CLI in-process: exit codes, --json everywhere, the local operator audited, secrets masked."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.core.errors import ExitCode
from bastion.store import head_revision


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_creates_private_state_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "init", "--json")
    assert code == ExitCode.OK
    report = json.loads(out)
    state = Path(report["state_dir"])
    assert state == (tmp_path / ".bastion").resolve()
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "bastion.db").stat().st_mode & 0o777 == 0o600
    assert Path(report["ca_cert"]).is_file()
    assert report["schema_revision"] == head_revision()
    ca_before = Path(report["ca_cert"]).read_bytes()
    assert run(capsys, "init", "--json")[0] == ExitCode.OK
    assert Path(report["ca_cert"]).read_bytes() == ca_before


def test_init_tightens_a_loose_state_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / ".bastion").mkdir(mode=0o755)
    (tmp_path / ".bastion").chmod(0o755)
    assert run(capsys, "init")[0] == ExitCode.OK
    assert (tmp_path / ".bastion").stat().st_mode & 0o777 == 0o700


def test_config_show_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_DATABASE_URL", "postgresql+psycopg://app:Pa55word-XYZ@db/bastion")
    code, out, err = run(capsys, "config", "show", "--json")
    assert code == ExitCode.OK
    shown = json.loads(out)
    assert shown["database_url"] == "**********"
    assert shown["effective_database_url"] == "postgresql+psycopg://app:***@db/bastion"
    assert "Pa55word" not in out + err
    code, out, err = run(capsys, "config", "show")
    assert code == ExitCode.OK
    assert "Pa55word" not in out + err


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("BASTION_PROT", "1", "BASTION_PROT"),
        ("BASTION_PORT", "99999", "port"),
        ("BASTION_LOG_LEVEL", "loud", "log_level"),
    ],
)
def test_configuration_errors_exit_3_naming_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    code, out, _ = run(capsys, "config", "show", "--json")
    assert code == ExitCode.CONFIG
    error = json.loads(out)["error"]
    assert error["code"] == "config.invalid"
    assert named in error["message"]


def test_text_errors_go_to_stderr_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_PORT", "0")
    code, out, err = run(capsys, "init")
    assert code == ExitCode.CONFIG
    assert out == ""
    assert "config.invalid" in err and "Hint:" in err


def test_bastion_json_env_parses_strictly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_JSON", "1")
    code, out, _ = run(capsys, "config", "show")
    assert code == ExitCode.OK
    assert json.loads(out)["port"] == 8443
    monkeypatch.setenv("BASTION_JSON", "yes")
    assert run(capsys, "config", "show")[0] == ExitCode.CONFIG


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "audit", "search", "--limit", "0")[0] == ExitCode.USAGE
    assert run(capsys, "no-such-command")[0] == ExitCode.USAGE


def test_audit_search_runs_as_the_local_operator_and_is_audited(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "init")[0] == ExitCode.OK
    assert run(capsys, "audit", "search", "--json")[0] == ExitCode.OK
    code, out, _ = run(capsys, "audit", "search", "--action", "audit.read", "--json")
    assert code == ExitCode.OK
    page = json.loads(out)
    [first] = page["events"]
    assert first["actor_id"] == f"operator:{getpass.getuser()}"
    assert first["actor_type"] == "operator"
    assert first["auth_method"] == "local"
    assert first["outcome"] == "allowed"
    assert first["policy_ids"] == ["default:local-operator"]
    assert first["source_address"] == "local"


def test_audit_search_text_output_and_time_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "init")[0] == ExitCode.OK
    run(capsys, "audit", "search")
    code, out, _ = run(
        capsys, "audit", "search", "--since", "2000-01-01T00:00:00+0000", "--outcome", "ALLOWED"
    )
    assert code == ExitCode.OK
    assert "audit.read" in out


def test_unsafe_http_off_loopback_is_refused_before_listening(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "up", "--unsafe-http", "--host", "0.0.0.0", "--json")  # noqa: S104
    assert code == ExitCode.CONFIG
    assert "loopback" in json.loads(out)["error"]["message"]

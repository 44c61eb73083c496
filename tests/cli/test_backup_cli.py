"""Encrypted backups: a restore brings back a working, verifiable state; hostile or damaged backups and the
wrong master key are refused without leaving anything behind."""

from __future__ import annotations

import base64
import io
import json
import secrets
import sys
import tarfile
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.core.errors import ExitCode

SECRET = "pg-password-Xy7Qz"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture
def backup(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BASTION_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    assert run(capsys, "init")[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET))
    assert run(capsys, "secrets", "put", "db/main")[0] == 0
    assert run(capsys, "audit", "checkpoint")[0] == 0
    target = tmp_path / "state.bak"
    code, out = run(capsys, "backup", "create", str(target), "--json")
    assert code == 0
    assert "bastion.db" in json.loads(out)["files"]
    assert SECRET.encode() not in target.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o600
    return target


def test_restore_brings_back_a_working_verifiable_state(
    backup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_STATE_DIR", str(tmp_path / "restored"))
    assert run(capsys, "backup", "restore", str(backup))[0] == 0
    code, out = run(capsys, "secrets", "get", "db/main", "--reveal", "--json")
    assert json.loads(out)["value"] == SECRET
    code, out = run(capsys, "audit", "verify", "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True
    code, out = run(capsys, "audit", "search", "--action", "backup.restore", "--json")
    assert len(json.loads(out)["events"]) == 1
    assert run(capsys, "backup", "restore", str(backup))[0] == ExitCode.CONFLICT  # never over existing state


def test_wrong_master_key_restores_nothing(
    backup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.setenv("BASTION_STATE_DIR", str(tmp_path / "restored"))
    assert run(capsys, "backup", "restore", str(backup))[0] == ExitCode.CONFIG
    assert not (tmp_path / "restored" / "bastion.db").exists()


def test_tampered_payload_is_refused(
    backup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with tarfile.open(backup) as archive:
        payload = archive.getmember("payload.bste")
    data = bytearray(backup.read_bytes())
    data[payload.offset_data + payload.size // 2] ^= 0x01  # inside the payload's ciphertext
    backup.write_bytes(bytes(data))
    monkeypatch.setenv("BASTION_STATE_DIR", str(tmp_path / "restored"))
    assert run(capsys, "backup", "restore", str(backup))[0] == ExitCode.FINDING
    assert not (tmp_path / "restored" / "bastion.db").exists()


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil", "extra.txt"])
def test_hostile_archives_are_refused(
    backup: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    member: str,
) -> None:
    with tarfile.open(backup, "a") as archive:
        info = tarfile.TarInfo(member)
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    monkeypatch.setenv("BASTION_STATE_DIR", str(tmp_path / "restored"))
    assert run(capsys, "backup", "restore", str(backup))[0] == ExitCode.INVALID_INPUT
    assert not (tmp_path / "escape.txt").exists()


def test_backups_are_for_the_embedded_deployment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/x")
    assert run(capsys, "backup", "create", str(tmp_path / "b"))[0] == ExitCode.CONFIG

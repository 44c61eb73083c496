"""``bastion keys`` end to end in-process: create, encrypt, decrypt, rotate, rewrap, destroy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bastion.cli.main import main
from bastion.core.errors import ExitCode


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_keys_lifecycle_and_file_encryption(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        run(capsys, "keys", "list")[0] == ExitCode.CONFIG
    )  # not initialised yet: a clear error, not a crash
    assert run(capsys, "init")[0] == ExitCode.OK
    code, out = run(capsys, "keys", "create", "datasets", "--max-age-days", "90", "--json")
    assert code == ExitCode.OK
    assert json.loads(out)[0]["algorithm"] == "aes256-gcm"
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(300_000))
    sealed, opened = tmp_path / "data.bste", tmp_path / "data.out"
    assert (
        run(capsys, "keys", "encrypt", str(source), str(sealed), "--key", "datasets", "--object-id", "d1")[0]
        == 0
    )
    assert source.read_bytes() not in sealed.read_bytes()
    assert run(capsys, "keys", "decrypt", str(sealed), str(opened), "--object-id", "d1")[0] == 0
    assert opened.read_bytes() == source.read_bytes()
    assert (
        run(capsys, "keys", "decrypt", str(sealed), str(tmp_path / "x"), "--object-id", "d2")[0]
        == ExitCode.FINDING
    )
    assert not (tmp_path / "x").exists()
    assert run(capsys, "keys", "rotate", "datasets")[0] == 0
    code, out = run(capsys, "keys", "rewrap", str(sealed), "--object-id", "d1", "--json")
    assert json.loads(out)["version"] == 2
    assert run(capsys, "keys", "destroy", "datasets")[0] == ExitCode.USAGE  # needs --yes
    assert run(capsys, "keys", "destroy", "datasets", "--yes")[0] == 0
    assert run(capsys, "keys", "decrypt", str(sealed), str(opened), "--object-id", "d1")[0] != 0
    code, out = run(capsys, "audit", "search", "--action", "keys.destroy", "--json")
    assert json.loads(out)["events"][0]["outcome"] == "allowed"

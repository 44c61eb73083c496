"""``bastion models sign|verify`` and ``bastion keys public-key`` as an operator and a CI job use them."""

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


def test_sign_then_verify_then_tamper(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\1" * 4096)
    signature, public = tmp_path / "model.sig", tmp_path / "pub.pem"
    assert run(capsys, "init")[0] == ExitCode.OK
    assert (
        run(capsys, "keys", "create", "release", "--purpose", "sign", "--algorithm", "ecdsa-p256-sha256")[0]
        == 0
    )
    code, _, _ = run(capsys, "models", "sign", str(model), "--key", "release", "--signature", str(signature))
    assert code == ExitCode.OK
    code, pem, _ = run(capsys, "keys", "public-key", "release")
    public.write_text(pem)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    verify = ["models", "verify", str(model), "--signature", str(signature), "--key", str(public)]
    code, out, _ = run(capsys, *verify, "--json")
    assert (code, json.loads(out)["files"]) == (ExitCode.OK, 1)
    (model / "weights.bin").write_bytes(b"\2" * 4096)
    code, _, err = run(capsys, *verify)
    assert code == ExitCode.FINDING
    assert "weights.bin" in err
    assert run(
        capsys, "models", "verify", str(model), "--signature", str(tmp_path / "nope"), "--key", str(public)
    )[0] == (ExitCode.INVALID_INPUT)
    assert run(capsys, "models", "sign", str(model), "--key", "missing", "--signature", str(signature))[
        0
    ] == (ExitCode.NOT_FOUND)

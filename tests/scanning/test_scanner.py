"""The artifact scanner on the shared dev set and on attacks built here. Nothing in these tests ever loads an
artifact: files are written with pickle/joblib/numpy (writing runs nothing) and only ever scanned."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bastion.cli.main import main
from bastion.core.errors import ExitCode
from bastion.scanning import Verdict, scan_path

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "models" / "dev"


def dev_rows() -> list[dict[str, str]]:
    if not DEV.is_dir():
        pytest.skip(f"the shared dev set is not at {DEV}")
    with (DEV / "labels.tsv").open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_dev_set_every_reject_rejected_every_accept_accepted() -> None:
    wrong = []
    for row in dev_rows():
        report = scan_path(DEV / row["path"])
        accepted = report.verdict is Verdict.CLEAN
        if accepted != (row["expected"] == "accept"):
            wrong.append((row["path"], row["expected"], report.verdict.value))
    assert wrong == []


class Payload:
    """Pickles as a call to os.system — the classic payload (only ever written, never loaded)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def verdict(path: Path) -> Verdict:
    return scan_path(path).verdict


def test_real_sklearn_and_joblib_files_are_clean(tmp_path: Path) -> None:
    features, labels = make_classification(n_samples=200, n_features=8, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    joblib.dump(model, tmp_path / "model.joblib")
    joblib.dump(model, tmp_path / "model.z.joblib", compress=3)
    arrays = {"i": np.arange(10), "f": np.zeros((3, 4), order="F"), "o": np.array([1, "x"], dtype=object)}
    joblib.dump(arrays, tmp_path / "arrays.joblib")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    np.save(tmp_path / "plain.npy", np.arange(5))
    np.savez(tmp_path / "both.npz", a=np.arange(3), b=np.ones(2))
    for name in ("model.joblib", "model.z.joblib", "arrays.joblib", "model.pkl", "plain.npy", "both.npz"):
        assert verdict(tmp_path / name) is Verdict.CLEAN, name


def test_a_payload_is_found_wherever_it_hides(tmp_path: Path) -> None:
    evil = pickle.dumps(Payload(), protocol=4)
    hidden = {
        "raw.bin": evil,  # any extension
        "in-joblib-object-array.joblib": b"",
        "second-pickle.pkl": pickle.dumps({"benign": 1}) + evil,
    }
    joblib.dump(
        {"ok": np.arange(3), "bad": np.array([Payload()], dtype=object)}, tmp_path / "in-joblib.joblib"
    )
    np.save(tmp_path / "obj.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "torch.pt", "w") as archive:
        archive.writestr("archive/data.pkl", evil)
        archive.writestr("archive/version", "3\n")
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as archive:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as nested:
            nested.writestr("model.pkl", evil)
        archive.writestr("inner.zip", inner.getvalue())
    for name, data in hidden.items():
        if data:
            write(tmp_path, name, data)
    for name in ("raw.bin", "second-pickle.pkl", "in-joblib.joblib", "obj.npy", "torch.pt", "nested.zip"):
        report = scan_path(tmp_path / name)
        assert report.verdict is Verdict.UNSAFE, name
        assert any(f.global_name in ("posix.system", "nt.system", "os.system") for f in report.findings), name


def _stack_global_via_memo() -> bytes:
    """STACK_GLOBAL whose operands come from the memo, not from the opcodes right before it."""
    return (
        b"\x80\x04"
        b"\x8c\x05posix\x94"  # memo 0
        b"\x8c\x06system\x94"  # memo 1
        b"\x8c\x04junk\x94"  # memo 2, on the stack in between
        b"0"  # POP junk
        b"0"  # POP 'system'
        b"0"  # POP 'posix'
        b"h\x00h\x01\x93"  # GET 0, GET 1, STACK_GLOBAL
        b"\x8c\x02id\x85R."
    )


def _short(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _call(module: str, name: str) -> bytes:
    """A protocol-4 pickle calling module.name() through STACK_GLOBAL."""
    return b"\x80\x04" + _short(module) + _short(name) + b"\x93)R."


@pytest.mark.parametrize(
    ("name", "stream", "code"),
    [
        ("stack global through memo", _stack_global_via_memo(), "pickle.global.not-allowed"),
        (
            "dotted name escaping an allowed module",
            _call("torch.nn.modules.linear", "Linear.os.system"),
            "pickle.global.not-allowed",
        ),
        (
            "lowercase function under a class prefix",
            _call("sklearn.base", "clone"),
            "pickle.global.not-allowed",
        ),
        ("allowed name, module not allowed", _call("numpy.testing", "dtype"), "pickle.global.not-allowed"),
        (
            "computed stack global",
            b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x01x\x85R\x8c\x01y\x93.",
            "pickle.global.unresolved",
        ),
        ("extension registry", b"\x80\x02\x82\x01)R.", "pickle.extension"),
        (
            "call of a computed callable",
            b"\x80\x04\x8c\x08builtins\x8c\x03str\x93)R)R.",
            "pickle.call.computed",
        ),
        ("truncated", pickle.dumps({"a": [1, 2, 3]})[:-3], "pickle.malformed"),
        ("trailing garbage", pickle.dumps([1]) + b"\xff\xfe garbage", "pickle.malformed"),
        ("persistent id outside torch", b"\x80\x04\x8c\x01xQ.", "pickle.persistent-id"),
    ],
)
def test_pickle_tricks_are_unsafe(tmp_path: Path, name: str, stream: bytes, code: str) -> None:
    report = scan_path(write(tmp_path, "case.bin", stream))
    assert report.verdict is Verdict.UNSAFE, name
    assert code in {f.code for f in report.findings}, (name, report.findings)


def test_the_stack_model_agrees_with_pickletools(tmp_path: Path) -> None:
    """The memo trick really is a valid pickle (pickletools' own validator accepts it)."""
    pickletools.dis(_stack_global_via_memo(), out=io.StringIO())


def _zip(entries: list[tuple[str, bytes]], **info: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            item = zipfile.ZipInfo(name)
            for key, value in info.items():
                setattr(item, key, value)
            archive.writestr(item, data)
    return buffer.getvalue()


def _flagged(data: bytes, flag: int) -> bytes:
    """Set a general-purpose flag in both the local and the central header (zipfile will not write it)."""
    patched = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = patched.index(signature) + at
        struct.pack_into("<H", patched, start, struct.unpack_from("<H", patched, start)[0] | flag)
    return bytes(patched)


def test_archive_tricks(tmp_path: Path) -> None:
    clean = pickle.dumps({"w": [1.0, 2.0]})
    cases = {
        "traversal": (_zip([("../../etc/cron.d/x", b"text")]), "archive.path-traversal"),
        "absolute": (_zip([("/etc/passwd", b"text")]), "archive.path-traversal"),
        "symlink": (_zip([("link", b"/etc/passwd")], external_attr=(0o120777 << 16)), "archive.symlink"),
        "encrypted flag": (_flagged(_zip([("data.pkl", clean)]), 0x1), "archive.encrypted"),
        "strong encryption flag": (_flagged(_zip([("data.pkl", clean)]), 0x40), "archive.encrypted"),
    }
    renamed = bytearray(_zip([("data.pkl", clean)]))
    local_name = renamed.index(b"data.pkl")  # the local header's copy comes first
    renamed[local_name : local_name + 8] = b"evil.pkl"
    cases["names disagree"] = (bytes(renamed), "archive.name-mismatch")
    hidden = _zip([("a.pkl", clean)])
    directory = hidden.index(b"PK\x01\x02")
    payload = pickle.dumps(Payload())
    shifted = hidden[:directory] + payload + hidden[directory:]
    end = shifted.rindex(b"PK\x05\x06")
    offset = struct.unpack_from("<I", shifted, end + 16)[0] + len(payload)
    shifted = shifted[: end + 16] + struct.pack("<I", offset) + shifted[end + 20 :]
    cases["bytes hidden between entries"] = (shifted, "archive.hidden-bytes")
    corrupted = bytearray(_zip([("data.pkl", clean)]))
    body = corrupted.index(clean)
    corrupted[body + 5] ^= 0xFF
    cases["bad crc"] = (bytes(corrupted), "archive.malformed")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.txt", b"\0" * (64 * 1024 * 1024))
    cases["bomb"] = (bomb.getvalue(), "archive.bomb")
    for name, (data, code) in cases.items():
        report = scan_path(write(tmp_path, f"{name}.zip", data))
        assert report.verdict is not Verdict.CLEAN, name
        assert code in {f.code for f in report.findings}, (name, report.findings)


def test_nesting_depth_is_bounded(tmp_path: Path) -> None:
    data = pickle.dumps([1])
    for level in range(5):
        data = _zip([(f"level{level}.zip" if level else "m.pkl", data)])
    report = scan_path(write(tmp_path, "deep.zip", data))
    assert "archive.nesting" in {f.code for f in report.findings}


def _safetensors(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize(
    ("header", "body", "clean"),
    [
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, True),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 8, False),  # past the end
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, False),  # size mismatch
        ({"w": {"dtype": "PICKLE", "shape": [8], "data_offsets": [0, 8]}}, b"\0" * 8, False),
        ({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 8, False),  # trailing bytes
        (
            {
                "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
            },
            b"\0" * 6,
            False,
        ),  # overlapping tensors
    ],
)
def test_safetensors_headers(tmp_path: Path, header: dict[str, object], body: bytes, clean: bool) -> None:
    report = scan_path(write(tmp_path, "m.safetensors", _safetensors(header, body)))
    assert (report.verdict is Verdict.CLEAN) is clean, report.findings


def test_keras_v3_lambda_at_any_depth(tmp_path: Path) -> None:
    layer = {"class_name": "Dense", "module": "keras.layers", "config": {}}
    lambda_layer = {"class_name": "Lambda", "module": "keras.layers", "config": {"function": "..."}}
    custom = {"class_name": "Mine", "module": "evil.layers", "config": {}}
    nested = {
        "class_name": "Functional",
        "config": {"layers": [layer, {"class_name": "Sequential", "config": {"layers": [lambda_layer]}}]},
    }
    for name, config, unsafe in (
        ("plain", {"class_name": "Sequential", "config": {"layers": [layer]}}, False),
        ("nested-lambda", nested, True),
        ("custom", {"class_name": "Sequential", "config": {"layers": [custom]}}, True),
    ):
        data = _zip([("config.json", json.dumps(config).encode()), ("metadata.json", b"{}")])
        report = scan_path(write(tmp_path, f"{name}.keras", data))
        assert (report.verdict is Verdict.UNSAFE) is unsafe, name


def test_unknown_and_empty_files_are_not_accepted(tmp_path: Path) -> None:
    assert verdict(write(tmp_path, "empty.bin", b"")) is Verdict.UNSCANNABLE
    assert verdict(write(tmp_path, "png.pt", b"\x89PNG\r\n\x1a\n" + b"\0" * 32)) is Verdict.UNSCANNABLE


def test_cli_exit_codes_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = write(tmp_path, "clean.pkl", pickle.dumps({"a": 1}))
    evil = write(tmp_path, "evil.pkl", pickle.dumps(Payload()))
    unknown = write(tmp_path, "x.bin", b"\x89PNG\r\n\x1a\n....")
    assert main(["scan", str(clean)]) == ExitCode.OK
    assert main(["scan", str(clean), str(unknown)]) == ExitCode.UNSCANNABLE
    capsys.readouterr()
    assert main(["scan", "--format", "sarif", str(tmp_path)]) == ExitCode.FINDING
    sarif = json.loads(capsys.readouterr().out)
    [run] = sarif["runs"]
    assert any(r["ruleId"] == "pickle.global.not-allowed" for r in run["results"])
    assert main(["scan", "--format", "json", str(evil)]) == ExitCode.FINDING
    document = json.loads(capsys.readouterr().out)
    assert document["reports"][0]["verdict"] == "unsafe"
    assert main(["scan", str(tmp_path / "missing")]) == ExitCode.INVALID_INPUT

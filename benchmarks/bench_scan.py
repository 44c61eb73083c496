"""Artifact scanner: detection on the shared dev set, and end-to-end scan time, against picklescan and
modelscan on the same files in the same run.

Detection: every file in ``../shared/data/models/dev`` (``labels.tsv``); a tool *rejects* a file when its exit
code says it found something or could not scan it (picklescan: non-zero; modelscan: 1 or 2), and *accepts* it
otherwise (including modelscan's "no supported files", exit 3). Bastion rejects anything not clean.

Scan time: wall time of the whole process (start-up included), median of 3, on
- a 1 GiB multi-file PyTorch checkpoint (4 zip shards of 256 MiB, the layout ``torch.save`` writes: an
  ``archive/data.pkl`` of ``_rebuild_tensor_v2`` calls with persistent ids, raw storages in
  ``archive/data/``),
- a ~60 MB scikit-learn pickle (a random forest), and the same model as a joblib file.

picklescan and modelscan are not Bastion dependencies; install them in a separate venv and point
``BASTION_BENCH_TOOLS`` at its ``bin`` directory (e.g. ``python -m venv /tmp/tools && /tmp/tools/bin/pip
install picklescan modelscan``). Without them only Bastion's figures are printed.

Run: ``BASTION_BENCH_TOOLS=/tmp/tools/bin .venv/bin/python -m benchmarks.bench_scan``.
"""

from __future__ import annotations

import csv
import functools
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from bastion.scanning import Verdict, scan_path

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "models" / "dev"
BASTION = str(Path(sys.executable).with_name("bastion"))
SHARD_BYTES = 256 * 1024 * 1024


def tools() -> dict[str, list[str]]:
    found = {"bastion": [BASTION, "scan"]}
    directory = os.environ.get("BASTION_BENCH_TOOLS")
    if directory:
        for name, argv in (("picklescan", ["-p"]), ("modelscan", ["-p"])):
            binary = Path(directory) / name
            if binary.exists():
                found[name] = [str(binary), *argv]
    return found


def rejects(tool: str, code: int) -> bool:
    if tool == "modelscan":
        return code in (1, 2)
    return code != 0


def run(argv: list[str], path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    result = subprocess.run([*argv, str(path)], capture_output=True, check=False, timeout=3600)
    return result.returncode, time.perf_counter() - started


def detection(available: dict[str, list[str]]) -> None:
    with (DEV / "labels.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    print(
        f"Detection on {len(rows)} dev artifacts "
        "(misses = a reject accepted; false alarms = an accept rejected)"
    )
    for tool, argv in available.items():
        misses = false_alarms = 0
        for row in rows:
            path = DEV / row["path"]
            if tool == "bastion":
                rejected = scan_path(path).verdict is not Verdict.CLEAN  # in-process: same code as the CLI
            else:
                rejected = rejects(tool, run(argv, path)[0])
            want = row["expected"] == "reject"
            misses += want and not rejected
            false_alarms += rejected and not want
        print(f"  {tool:11s} misses {misses:3d}   false alarms {false_alarms:3d}")


@functools.cache
def _fake_torch() -> tuple[object, type]:
    """Stand-ins that pickle under torch's names (torch itself is not needed to write its format)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:
        raise NotImplementedError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    storage = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = storage  # type: ignore[attr-defined]
    sys.modules.setdefault("torch", torch)
    sys.modules.setdefault("torch._utils", utils)
    return _rebuild_tensor_v2, storage


class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, storage: _Storage, shape: tuple[int, ...], rebuild: object) -> None:
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        stride = (self.shape[1], 1) if len(self.shape) == 2 else (1,)
        return (self.rebuild, (self.storage, 0, self.shape, stride, False, OrderedDict()))


def write_torch_shard(path: Path, tensors: int, rows: int, cols: int) -> None:
    rebuild, storage_class = _fake_torch()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", storage_class, obj.key, "cpu", obj.numel)
            return None

    state = OrderedDict()
    storages = []
    for index in range(tensors):
        storage = _Storage(str(index), rows * cols)
        storages.append(storage)
        state[f"layers.{index}.weight"] = _Tensor(storage, (rows, cols), rebuild)
    buffer = __import__("io").BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    block = np.random.default_rng(0).standard_normal(rows * cols, dtype=np.float32).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", block)
        archive.writestr("archive/version", "3\n")


def scan_times(available: dict[str, list[str]], root: Path) -> None:
    checkpoint = root / "checkpoint"
    checkpoint.mkdir()
    for shard in range(4):
        write_torch_shard(checkpoint / f"pytorch_model-0000{shard + 1}-of-00004.bin", 16, 2048, 2048)
    features, labels = make_classification(n_samples=20_000, n_features=40, random_state=0)
    forest = RandomForestClassifier(n_estimators=250, random_state=0, n_jobs=2).fit(features, labels)
    pickled, dumped = root / "forest.pkl", root / "forest.joblib"
    pickled.write_bytes(pickle.dumps(forest, protocol=5))
    joblib.dump(forest, dumped)
    size = sum(p.stat().st_size for p in checkpoint.iterdir())
    print(
        f"Scan time, whole process, median of 3 (checkpoint {size / 2**30:.2f} GiB in 4 shards; "
        f"pickle {pickled.stat().st_size / 1e6:.0f} MB; joblib {dumped.stat().st_size / 1e6:.0f} MB)"
    )
    for label, target in (
        ("1 GiB PyTorch checkpoint", checkpoint),
        ("sklearn pickle", pickled),
        ("sklearn joblib", dumped),
    ):
        results = {}
        for tool, argv in available.items():
            runs = [run(argv, target) for _ in range(3)]
            results[tool] = (statistics.median(t for _, t in runs), runs[0][0])
        base = results["bastion"][0]
        cells = "   ".join(
            f"{tool} {seconds:6.2f} s (exit {code}{_ratio(tool, seconds, base)})"
            for tool, (seconds, code) in results.items()
        )
        print(f"  {label:25s} {cells}")


def _ratio(tool: str, seconds: float, base: float) -> str:
    return "" if tool == "bastion" else f", {seconds / base:.1f}x bastion's time"


def main() -> None:
    available = tools()
    if len(available) == 1:
        print("(picklescan/modelscan not found: set BASTION_BENCH_TOOLS to compare)")
    detection(available)
    with tempfile.TemporaryDirectory() as tmp:
        scan_times(available, Path(tmp))


if __name__ == "__main__":
    main()

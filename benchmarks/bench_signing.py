"""Model signing and verification throughput: Bastion against model_signing (the OpenSSF reference
implementation, same files, same run), and against the machine's SHA-256 rate on 2 cores (the ceiling: both
tools spend nearly all their time hashing).

The model is 1 GiB in 8 files of 128 MiB (a sharded checkpoint). Both tools run as whole processes (start-up
included), median of 3, and Bastion's signing is also timed in process (its CLI start-up loads the
database, key and policy layers); the SHA-256 baseline hashes the same 8 files with two threads in this
process, after one read to warm the page cache, as the tools do.

Run: ``.venv/bin/python -m benchmarks.bench_signing``.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

BIN = Path(sys.executable).parent
FILES, FILE_BYTES = 8, 128 * 1024 * 1024


def timed(argv: list[str], env: dict[str, str]) -> float:
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True, timeout=600)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def sha256_rate(paths: list[Path]) -> float:
    def digest(path: Path) -> str:
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                hasher.update(block)
        return hasher.hexdigest()

    runs = []
    for _ in range(3):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(digest, paths))
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def _sign_in_process(root: Path, model: Path) -> float:
    """Signing throughput without the CLI's start-up (which loads the database, key and policy layers)."""
    from bastion.app import build
    from bastion.app.container import operator_context
    from bastion.core.settings import load_settings
    from bastion.models.signing import sign_model

    system = build(load_settings(overrides={"state_dir": root / "state"}))
    try:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            sign_model(system.keys, operator_context(), "bench", model)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)
    finally:
        system.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "model"
        model.mkdir()
        block = os.urandom(FILE_BYTES)
        paths = []
        for index in range(FILES):
            path = model / f"model-{index:05d}-of-{FILES:05d}.safetensors"
            path.write_bytes(block[index:] + block[:index])
            paths.append(path)
        size = FILES * FILE_BYTES
        env = {**os.environ, "BASTION_STATE_DIR": str(root / "state")}
        subprocess.run([str(BIN / "bastion"), "init"], env=env, capture_output=True, check=True)
        subprocess.run(
            [
                str(BIN / "bastion"),
                "keys",
                "create",
                "bench",
                "--purpose",
                "sign",
                "--algorithm",
                "ecdsa-p256-sha256",
            ],
            env=env,
            capture_output=True,
            check=True,
        )
        public = root / "bastion.pem"
        public.write_bytes(
            subprocess.run(
                [str(BIN / "bastion"), "keys", "public-key", "bench"],
                env=env,
                capture_output=True,
                check=True,
            ).stdout
        )
        key = ec.generate_private_key(ec.SECP256R1())
        (root / "ms.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (root / "ms.pem").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        sha = sha256_rate(paths)
        bastion_sig, ms_sig = str(root / "bastion.sig"), str(root / "ms.sig")
        results = {
            "bastion sign": timed(
                [
                    str(BIN / "bastion"),
                    "models",
                    "sign",
                    str(model),
                    "--key",
                    "bench",
                    "--signature",
                    bastion_sig,
                ],
                env,
            ),
            "model_signing sign": timed(
                [
                    str(BIN / "model_signing"),
                    "sign",
                    "key",
                    "--private_key",
                    str(root / "ms.key"),
                    "--signature",
                    ms_sig,
                    str(model),
                ],
                env,
            ),
            "bastion verify": timed(
                [
                    str(BIN / "bastion"),
                    "models",
                    "verify",
                    str(model),
                    "--signature",
                    bastion_sig,
                    "--key",
                    str(public),
                ],
                env,
            ),
            "model_signing verify": timed(
                [
                    str(BIN / "model_signing"),
                    "verify",
                    "key",
                    "--signature",
                    ms_sig,
                    "--public_key",
                    str(root / "ms.pem"),
                    str(model),
                ],
                env,
            ),
        }
        in_process = _sign_in_process(root, model)
    gib = size / 2**30
    print(f"Model: {gib:.0f} GiB in {FILES} files. SHA-256 on 2 threads (baseline): {gib / sha:.2f} GiB/s")
    results["bastion sign (in process, no start-up)"] = in_process
    for label, seconds in results.items():
        rate = gib / seconds
        print(
            f"  {label:22s} {seconds:6.2f} s  {rate:5.2f} GiB/s  ({rate / (gib / sha):.0%} of 2-core SHA-256)"
        )


if __name__ == "__main__":
    main()

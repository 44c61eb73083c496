"""Object encryption benchmark (issue: key management).

Throughput of ``encrypt_stream``/``decrypt_stream`` (AES-256-GCM, 1 MiB chunks, local backend) on a 1 GiB
file, against ``openssl speed -evp aes-256-gcm`` on 1 MiB blocks (single core) measured in the same run; the
file-to-file variants (with fsync) are reported against this disk's own write+fsync rate;
and peak resident memory of a fresh process encrypting files of growing size (flat = constant memory).

Run: ``.venv/bin/python -m benchmarks.bench_keys [--gib 1]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def openssl_rate() -> float:
    """Bytes per second of openssl's AES-256-GCM on 1 MiB blocks, one core."""
    output = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", str(MIB), "-seconds", "3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^aes-256-gcm\s+([\d.]+)k", output, re.M | re.I)
    if match is None:
        raise RuntimeError("could not read openssl speed output")
    return float(match.group(1)) * 1000


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(block)


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return len(data)  # type: ignore[arg-type]


def child(mode: str, source: str, target: str, state: str) -> None:
    """Runs in a fresh process so ru_maxrss is this operation's alone."""
    from bastion.audit import MerkleAuditLog
    from bastion.core.clock import SystemClock
    from bastion.keys.envelope import decrypt_file, decrypt_stream, encrypt_file, encrypt_stream
    from bastion.keys.local import LocalBackend, MasterKeySource
    from bastion.keys.manager import KeyManager
    from bastion.keys.model import KeyPurpose
    from bastion.policy import CedarAuthorizer, PolicySource, RoleDirectory
    from bastion.spine import Context, Principal, PrincipalType, UnitOfWork
    from bastion.store import Database, migrate

    root = Path(state)
    database = Database(f"sqlite:///{root / 'bench.db'}")
    migrate(database)
    principal = Principal(id="operator:bench", type=PrincipalType.OPERATOR, auth_method="local")
    clock = SystemClock()
    authorizer = CedarAuthorizer(PolicySource(database, clock), RoleDirectory(database, clock), clock)
    uow = UnitOfWork(database, authorizer, MerkleAuditLog(), clock)
    backend = LocalBackend(root / "keyring.bks", MasterKeySource(key_file=root / "master.key"))
    keys = KeyManager(uow, backend, clock)
    context = Context(principal)
    if not keys.list_keys(context):
        keys.create(context, "bench", KeyPurpose.ENCRYPT)
    started = time.perf_counter()
    if mode == "encrypt":
        encrypt_file(keys, context, "bench", Path(source), Path(target), "bench-object")
    elif mode == "decrypt":
        decrypt_file(keys, context, Path(source), Path(target), "bench-object")
    elif mode == "encrypt-stream":
        with Path(source).open("rb", buffering=0) as src:
            encrypt_stream(keys, context, "bench", "bench-object", src, _Discard())
    else:
        with Path(source).open("rb", buffering=0) as src:
            decrypt_stream(keys, context, "bench-object", src, _Discard())
    elapsed = time.perf_counter() - started
    print(f"{elapsed} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


def run_child(mode: str, source: Path, target: Path, state: Path) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_keys",
        "--child",
        mode,
        str(source),
        str(target),
        str(state),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    seconds, rss_kib = output.split()
    return float(seconds), int(rss_kib)


def disk_write_rate(path: Path, size: int) -> float:
    block = os.urandom(MIB)
    started = time.perf_counter()
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    rate = size / (time.perf_counter() - started)
    path.unlink()
    return rate


def digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        state = root / "state"
        state.mkdir()
        size = int(args.gib * 1024) * MIB
        source, sealed, opened = root / "big.bin", root / "big.bste", root / "big.out"
        make_file(source, size)
        baseline = openssl_rate()
        print(f"baseline: openssl speed -evp aes-256-gcm, 1 MiB blocks, 1 core:  {baseline / MIB:7.0f} MiB/s")
        seconds, rss = run_child("encrypt-stream", source, sealed, state)
        print(
            f"encrypt_stream, {size // MIB} MiB file -> discard:         {size / seconds / MIB:7.0f} MiB/s"
            f"  ({size / seconds / baseline:6.1%} of openssl)  peak RSS {rss / 1024:5.0f} MiB"
        )
        disk = disk_write_rate(root / "disk.probe", size)
        print(f"baseline: this disk, write + fsync {size // MIB} MiB:             {disk / MIB:7.0f} MiB/s")
        seconds, rss = run_child("encrypt", source, sealed, state)
        print(
            f"encrypt_file, {size // MIB} MiB file -> file (fsync):        {size / seconds / MIB:7.0f} MiB/s"
            f"  ({size / seconds / disk:6.1%} of the disk)  peak RSS {rss / 1024:5.0f} MiB"
        )
        seconds, rss = run_child("decrypt-stream", sealed, opened, state)
        print(
            f"decrypt_stream, {size // MIB} MiB object -> discard:       {size / seconds / MIB:7.0f} MiB/s"
            f"  ({size / seconds / baseline:6.1%} of openssl)  peak RSS {rss / 1024:5.0f} MiB"
        )
        seconds, rss = run_child("decrypt", sealed, opened, state)
        print(
            f"decrypt_file, {size // MIB} MiB object -> file (fsync):      {size / seconds / MIB:7.0f} MiB/s"
            f"  ({size / seconds / disk:6.1%} of the disk)  peak RSS {rss / 1024:5.0f} MiB"
        )
        if digest(opened) != digest(source):
            raise SystemExit("round trip failed")
        for path in (sealed, opened):
            path.unlink()
        print("peak RSS of a fresh process running encrypt_file (constant memory = flat):")
        for mib in sorted({16, 128, 512, size // MIB}):
            make_file(source, mib * MIB)
            _, rss = run_child("encrypt", source, sealed, state)
            print(f"  {mib:5d} MiB file: peak RSS {rss / 1024:6.1f} MiB")
            sealed.unlink()


if __name__ == "__main__":
    main()

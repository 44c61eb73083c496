"""Witnesses: somewhere outside the database that keeps every published checkpoint.

Someone who can write to the database can recompute every hash, but cannot sign a checkpoint without the
key, and cannot take back what a witness already holds. ``bastion audit verify`` checks that the log still
contains, bit for bit, every tree the witness has seen.

``FileWitness`` is an append-only JSON-lines file. It pins the verifier key on first use, and — as a real
witness does — refuses a checkpoint that is not signed by that key or is not a consistent extension of the
last one it holds, so a rewritten log cannot even be published. Point it at storage the database's
administrators cannot rewrite (another host, an append-only mount, WORM storage).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bastion.client.tlog import Checkpoint, VerificationError, verify_checkpoint, verify_consistency
from bastion.core.errors import BastionError


class WitnessError(BastionError):
    code = "audit.witness_refused"
    status = 409
    title = "Witness refused the checkpoint"
    default_remedy = "The log no longer extends what the witness holds: run 'bastion audit verify'."


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    note: str
    checkpoint: Checkpoint


class Witness(Protocol):
    def publish(self, note: str, consistency_from_last: list[bytes], verifier_key: str) -> None: ...

    def pinned_key(self) -> str | None: ...

    def latest(self) -> WitnessedCheckpoint | None: ...

    def checkpoints(self) -> list[WitnessedCheckpoint]: ...


class FileWitness:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        entries = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise WitnessError(f"Witness file {self.path} is corrupt at line {number}.") from error
        return entries

    def pinned_key(self) -> str | None:
        entries = self._entries()
        return entries[0]["verifier_key"] if entries else None

    def checkpoints(self) -> list[WitnessedCheckpoint]:
        entries = self._entries()
        if not entries:
            return []
        key = entries[0]["verifier_key"]
        result = []
        for entry in entries[1:]:
            try:
                result.append(WitnessedCheckpoint(entry["note"], verify_checkpoint(entry["note"], key)))
            except (KeyError, VerificationError) as error:
                raise WitnessError(f"Witness file {self.path} holds an invalid checkpoint.") from error
        return result

    def latest(self) -> WitnessedCheckpoint | None:
        held = self.checkpoints()
        return held[-1] if held else None

    def publish(self, note: str, consistency_from_last: list[bytes], verifier_key: str) -> None:
        pinned = self.pinned_key()
        key = pinned or verifier_key
        if pinned is not None and pinned != verifier_key:
            raise WitnessError("The checkpoint signing key differs from the key this witness pinned.")
        try:
            checkpoint = verify_checkpoint(note, key)
        except VerificationError as error:
            raise WitnessError("The checkpoint's signature does not verify.") from error
        last = self.latest()
        if last is not None:
            if checkpoint.size < last.checkpoint.size:
                raise WitnessError("The checkpoint is older than one the witness already holds.")
            try:
                verify_consistency(
                    last.checkpoint.size,
                    checkpoint.size,
                    last.checkpoint.root_hash,
                    checkpoint.root_hash,
                    consistency_from_last,
                )
            except VerificationError as error:
                raise WitnessError("The checkpoint does not extend the last witnessed one.") from error
            if checkpoint.size == last.checkpoint.size:
                return  # already held
        lines = []
        if pinned is None:
            lines.append(json.dumps({"verifier_key": key}))
        lines.append(json.dumps({"note": note}))
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

"""SHA-256 of a file, read in large blocks (the hash releases the GIL, so several files hash in parallel)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 8 * 1024 * 1024


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()

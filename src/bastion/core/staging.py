"""Receiving uploaded bytes: a file name that is one safe path component, and an ``Upload`` that writes what
arrives into an owner-only file, hashing it and enforcing a size cap as it goes (nothing is held whole)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from bastion.core.errors import InvalidInput, PayloadTooLarge

_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def safe_filename(name: str) -> str:
    """A file name as stored: one path component, no surprises."""
    if not _FILENAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            "A file name is 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit, "
            "without '..'."
        )
    return name


class Upload:
    """The bytes of one file as they arrive: written 0600 (the directory should be 0700), hashed, capped.
    ``too_large`` is the error raised past ``limit`` bytes (a subclass of ``PayloadTooLarge``)."""

    def __init__(
        self, owner: str, path: Path, limit: int, too_large: type[PayloadTooLarge] = PayloadTooLarge
    ) -> None:
        self.owner, self.path, self._limit, self._too_large = owner, path, limit, too_large
        self._hasher, self.size = hashlib.sha256(), 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise self._too_large(f"The upload is larger than the limit of {self._limit} bytes.")
        self._hasher.update(chunk)
        self._file.write(chunk)

    def finish(self) -> str:
        """Close the file (durably) and return its SHA-256; idempotent."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        return self._hasher.hexdigest()

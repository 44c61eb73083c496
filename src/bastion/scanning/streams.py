"""A read-only window onto part of a larger buffer (a memory-mapped file, a member of an archive), with the
file methods ``pickletools`` and the format parsers use — no copy of the bytes."""

from __future__ import annotations

import io
import mmap


class Window:
    def __init__(
        self, buffer: bytes | memoryview | mmap.mmap, start: int = 0, end: int | None = None
    ) -> None:
        self._source = buffer
        self._view = memoryview(buffer)
        self._start = start
        self._end = len(self._view) if end is None else end
        self._pos = start

    def __len__(self) -> int:
        return self._end - self._start

    def read(self, size: int = -1) -> bytes:
        stop = self._end if size is None or size < 0 else min(self._end, self._pos + size)
        data = bytes(self._view[self._pos : stop])
        self._pos = max(self._pos, stop)
        return data

    def readline(self) -> bytes:
        # pickletools reads protocol-0 arguments line by line.
        stop = self._pos
        while stop < self._end and self._view[stop] != 0x0A:
            stop += 1
        return self.read(min(stop + 1, self._end) - self._pos)

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = min(max(base + offset, self._start), self._end)
        return self.tell()

    def head(self, size: int) -> bytes:
        return bytes(self._view[self._start : min(self._end, self._start + size)])

    def slice(self, start: int, end: int) -> Window:
        """A window onto [start, end) of this one (offsets relative to this window)."""
        return Window(self._view, self._start + start, self._start + min(end, len(self)))

    def bytes(self) -> bytes:
        return bytes(self._view[self._start : self._end])

    def view(self) -> memoryview:
        return self._view[self._start : self._end]

    def stream(self) -> mmap.mmap | io.BytesIO | Window:
        """The fastest file object over these bytes for an opcode-by-opcode reader: the memory map itself
        when the window is the whole file, an in-memory copy when small, else the window."""
        if isinstance(self._source, mmap.mmap) and self._start == 0 and self._end == len(self._source):
            self._source.seek(0)
            return self._source
        if len(self) <= 256 * 1024 * 1024:
            return io.BytesIO(self.view())
        self.seek(0)
        return self

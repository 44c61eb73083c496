"""Request bodies read with a cap, and files streamed out of a temporary workspace: shared by the routes that
take uploads or hand out files, so each behaves the same way."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from fastapi import Request
from fastapi.responses import StreamingResponse

CHUNK = 1 << 20


async def read_capped(request: Request, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of the body: reading stops there, so the service that checks the size
    refuses (and audits) an oversize request like any other bad input, without reading all of it."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def stream_file(
    opened: AbstractContextManager[Path], headers: dict[str, str], media_type: str
) -> StreamingResponse:
    """Stream the file ``opened`` yields (a plaintext file inside a workspace); the workspace is closed —
    removed — when the last byte is sent or the client goes away."""
    stack = ExitStack()
    try:
        path = stack.enter_context(opened)
        handle = stack.enter_context(path.open("rb"))
    except BaseException:
        stack.close()
        raise

    def chunks() -> Iterator[bytes]:
        try:
            while block := handle.read(CHUNK):
                yield block
        finally:
            stack.__exit__(*sys.exc_info())

    return StreamingResponse(chunks(), media_type=media_type, headers=headers)

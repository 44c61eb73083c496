"""The LLM proxy over HTTP, OpenAI-compatible: ``/v1/chat/completions`` (also streamed, as server-sent
events) and ``/v1/embeddings``. The stages are ``bastion.gateway.llm``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RequestContext
from bastion.gateway.llm import MAX_BODY, LlmProxy

router = APIRouter(tags=["llm"])


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(chunks)


def _proxy(request: Request) -> LlmProxy:
    proxy: LlmProxy = request.app.state.services.llm
    return proxy


@router.post("/v1/chat/completions", response_model=None)
async def chat(request: Request, context: RequestContext) -> Response | dict[str, Any]:
    proxy = _proxy(request)
    prepared = await run_in_threadpool(proxy.prepare, context, "llm.chat", await _body(request))
    if prepared.body.get("stream"):
        events = proxy.stream(context, "llm.chat", prepared, "/v1/chat/completions")
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"cache-control": "no-store"}
        )
    return await proxy.call(context, "llm.chat", prepared, "/v1/chat/completions")


@router.post("/v1/embeddings")
async def embeddings(request: Request, context: RequestContext) -> dict[str, Any]:
    proxy = _proxy(request)
    prepared = await run_in_threadpool(proxy.prepare, context, "llm.embed", await _body(request))
    prepared.body.pop("stream", None)
    return await proxy.call(context, "llm.embed", prepared, "/v1/embeddings")

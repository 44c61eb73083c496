"""The LLM proxy over HTTP, OpenAI-compatible: ``/v1/chat/completions`` (also streamed, as server-sent
events) and ``/v1/embeddings``. The stages are ``bastion.gateway.llm``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RequestContext
from bastion.api.streaming import read_capped
from bastion.gateway.llm import MAX_BODY, LlmProxy

router = APIRouter(tags=["llm"])


def _proxy(request: Request) -> LlmProxy:
    proxy: LlmProxy = request.app.state.services.llm
    return proxy


@router.post("/v1/chat/completions", response_model=None)
async def chat(request: Request, context: RequestContext) -> Response | dict[str, Any]:
    proxy = _proxy(request)
    prepared = await run_in_threadpool(
        proxy.prepare, context, "llm.chat", await read_capped(request, MAX_BODY)
    )
    if prepared.body.get("stream"):
        events = proxy.stream(context, "llm.chat", prepared, "/v1/chat/completions")
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"cache-control": "no-store"}
        )
    return await proxy.call(context, "llm.chat", prepared, "/v1/chat/completions")


@router.post("/v1/embeddings")
async def embeddings(request: Request, context: RequestContext) -> dict[str, Any]:
    proxy = _proxy(request)
    prepared = await run_in_threadpool(
        proxy.prepare, context, "llm.embed", await read_capped(request, MAX_BODY)
    )
    prepared.body.pop("stream", None)
    return await proxy.call(context, "llm.embed", prepared, "/v1/embeddings")

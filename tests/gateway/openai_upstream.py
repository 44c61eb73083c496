"""A local stand-in for an OpenAI-compatible upstream (a real process speaking the API over HTTP), for the LLM
proxy's tests: it accepts only its own API key, counts requests, and streams five chunks — the third one
carries text the proxy must block. ``python openai_upstream.py PORT``."""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

KEY = "sk-upstream-secret-0123456789"
CHUNKS = ["Hel", "lo, ", "FORBIDDEN words", " and", " more."]
seen = {"requests": 0}


def _authorized(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {KEY}"


async def chat(request: Request) -> Response:
    seen["requests"] += 1
    if not _authorized(request):
        return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
    body = await request.json()
    if body.get("stream"):

        async def events():  # type: ignore[no-untyped-def]
            if body.get("model") == "garbled":  # valid JSON, but not an event
                yield b"data: [1, 2]\n\n"
            chunks = CHUNKS if body.get("model") != "clean" else CHUNKS[:2]
            for index, text in enumerate(chunks):
                delta: dict[str, object] = {"content": text}
                if body.get("model") == "caller":  # the same text, as a tool call's arguments
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
                event = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta}],
                }
                yield f"data: {json.dumps(event)}\n\n".encode()
                del index
            if (body.get("stream_options") or {}).get("include_usage"):  # OpenAI's last chunk: usage only
                usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
                yield f"data: {json.dumps({'id': 'c1', 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    content = "Hello from upstream"
    if body.get("model") == "leaky":
        content = "sure, the key is AKIAIOSFODNN7EXAMPLE"
    if body.get("model") == "garbled":
        return Response(b"[1, 2]", media_type="application/json")
    usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    if body.get("model") == "verbose":  # an upstream that ignores the completion bound it was sent
        usage = {"prompt_tokens": 5, "completion_tokens": 1495, "total_tokens": 1500}
    message: dict[str, object] = {"role": "assistant", "content": content}
    if body.get("model") == "caller":  # no content: the credential is in a tool call's arguments
        call = {"name": "deploy", "arguments": '{"aws_key": "AKIAIOSFODNN7EXAMPLE"}'}
        message = {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "function": call}]}
    return JSONResponse({
        "id": "c1", "object": "chat.completion", "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
        # What bounded the completion, as received (the proxy's tests check what it forwarded).
        "received": {name: body.get(name) for name in ("max_tokens", "max_completion_tokens", "n")},
    })  # fmt: skip


async def embeddings(request: Request) -> Response:
    seen["requests"] += 1
    if not _authorized(request):
        return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
    return JSONResponse(
        {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}
    )


async def count(request: Request) -> Response:
    return JSONResponse(seen)


app = Starlette(routes=[
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/count", count),
])  # fmt: skip

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

"""The LLM proxy against a real local upstream process: credentials injected from the secrets store (never
the client's), prompts with secrets refused before they leave, responses checked — and a stream cut at the
chunk that carries a blocked pattern — each request audited."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from bastion.app import Bastion, build
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.settings import load_settings
from bastion.store import migrate
from tests.gateway.openai_upstream import KEY

UPSTREAM = Path(__file__).with_name("openai_upstream.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(UPSTREAM), str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/count", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def llm(
    tmp_path: Path, database_url: str, clock: FrozenClock, upstream: str
) -> Iterator[tuple[Bastion, dict[str, str]]]:
    settings = load_settings(
        overrides={
            "state_dir": tmp_path / "state",
            "database_url": database_url,
            "llm_upstreams": [
                {
                    "name": "local",
                    "base_url": upstream,
                    "secret": "bastion/upstream/local",
                    "models": ["gpt-test", "leaky"],
                }
            ],
            "llm_blocked_output": ["forbidden"],
            "llm_daily_tokens": 2000,
        }
    )
    system = build(settings, clock=clock)
    migrate(system.database)
    ops = operator_context()
    system.secrets.put(ops, "bastion/upstream/local", SecretStr(KEY))
    tokens = {}
    for name, role in (("app", "inference-client"), ("vic", "viewer")):
        system.identity.create_principal(ops, f"service:{name}")
        system.identity.assign_role(ops, f"service:{name}", role)
        tokens[name] = system.identity.create_api_key(ops, f"service:{name}").token
    yield system, tokens
    system.close()


def post(client: TestClient, token: str | None, path: str, body: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.post(
        path, content=json.dumps(body), headers={**headers, "content-type": "application/json"}
    )


def chat(model: str = "gpt-test", text: str = "Say hello", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def events(system: Bastion, action: str) -> list[object]:
    return list(system.audit.search(operator_context(), AuditFilter(action=action)).events)


def test_chat_with_injected_credentials(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    with TestClient(system.api()) as client:
        response = post(client, tokens["app"], "/v1/chat/completions", chat())
        assert response.status_code == 200, response.text
        assert (
            response.json()["choices"][0]["message"]["content"] == "Hello from upstream"
        )  # the upstream took
        # Bastion's injected key, not the client's (it answers 401 to anything else)
        embedded = post(client, tokens["app"], "/v1/embeddings", {"model": "gpt-test", "input": "hi"})
        assert embedded.status_code == 200 and embedded.json()["data"][0]["embedding"] == [0.1, 0.2]
    [event] = [e for e in events(system, "llm.chat") if e.outcome == "allowed"]
    assert event.details["upstream"] == "local" and len(event.details["prompt_sha256"]) == 64  # type: ignore[attr-defined]
    assert KEY not in json.dumps(event.details)  # type: ignore[attr-defined]


def test_stream_is_cut_at_the_chunk_with_a_blocked_pattern(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    with TestClient(system.api()) as client:
        headers = {"authorization": f"Bearer {tokens['app']}", "content-type": "application/json"}
        with client.stream(
            "POST", "/v1/chat/completions", content=json.dumps(chat(stream=True)), headers=headers
        ) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    payloads = [line[6:] for line in lines]
    texts = [
        json.loads(p)["choices"][0]["delta"]["content"] for p in payloads if p != "[DONE]" and "choices" in p
    ]
    assert texts == ["Hel", "lo, "]  # chunks 1 and 2 passed; chunk 3 never left Bastion
    error = json.loads(payloads[2])["error"]
    assert error["code"] == "llm.output_blocked" and error["reason"] == "output.blocked_pattern"
    assert payloads[-1] == "[DONE]" and "FORBIDDEN" not in "".join(payloads)
    [event] = [e for e in events(system, "llm.chat") if e.details.get("streamed")]  # type: ignore[attr-defined]
    assert event.details["cut"] == "output.blocked_pattern" and event.details["chunks"] == 3  # type: ignore[attr-defined]


def test_refusals(llm: tuple[Bastion, dict[str, str]], upstream: str) -> None:
    system, tokens = llm
    before = httpx.get(upstream + "/count").json()["requests"]
    with TestClient(system.api()) as client:
        secret_prompt = post(
            client,
            tokens["app"],
            "/v1/chat/completions",
            chat(text="use ghp_0123456789abcdefghijABCDEFGHIJ012345"),
        )
        assert secret_prompt.status_code == 422 and secret_prompt.json()["code"] == "llm.prompt_blocked"
        assert httpx.get(upstream + "/count").json()["requests"] == before  # never sent upstream
        leaky = post(client, tokens["app"], "/v1/chat/completions", chat(model="leaky"))
        assert leaky.status_code == 422 and leaky.json()["reason"] == "output.credential"
        assert post(client, tokens["app"], "/v1/chat/completions", chat(model="nope")).status_code == 404
        assert post(client, tokens["vic"], "/v1/chat/completions", chat()).status_code == 403
        assert post(client, None, "/v1/chat/completions", chat()).status_code == 401
        assert post(client, tokens["app"], "/v1/chat/completions", {"messages": []}).status_code == 400
        quota = post(client, tokens["app"], "/v1/chat/completions", chat(max_tokens=5000))
        assert quota.status_code == 429 and int(quota.headers["retry-after"]) >= 1
    reasons = [e.reason for e in events(system, "llm.chat") if e.outcome == "denied"]  # type: ignore[attr-defined]
    assert any("llm.prompt_blocked" in r for r in reasons) and any("output.credential" in r for r in reasons)
    assert any("rate.limited" in r for r in reasons)

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
                    "models": ["gpt-test", "leaky", "clean", "garbled", "caller", "verbose"],
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


def test_a_body_without_a_model_is_refused_after_authentication_and_audited(
    llm: tuple[Bastion, dict[str, str]],
) -> None:
    system, tokens = llm
    with TestClient(system.api()) as client:
        anonymous = client.post(
            "/v1/chat/completions", content=b"garbage", headers={"content-type": "text/x"}
        )
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "auth.required"
        signed_in = post(client, tokens["app"], "/v1/chat/completions", {"messages": "no model"})
        assert signed_in.status_code == 400 and signed_in.json()["code"] == "request.invalid"
    refusals = [(e.actor_id, e.reason, e.resource_id) for e in events(system, "llm.chat")]  # type: ignore[attr-defined]
    assert refusals == [
        ("anonymous", "auth.required", "(unreadable request)"),
        ("service:app", "request.invalid", "(unreadable request)"),
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_body_naming_a_key_twice_is_refused_and_never_sent(
    llm: tuple[Bastion, dict[str, str]], upstream: str, encoding: str
) -> None:
    """``"model"`` twice: this parser keeps the last, a reader in front of the gateway may keep the first."""
    system, tokens = llm
    # (A lone surrogate, which the parser lets pass, must not turn the refusal into an error.)
    text = '{"model": "gpt-test", "messages": [{"role": "user", "content": "Hi \ud800"}], "model": "leaky"}'
    before = httpx.get(upstream + "/count").json()["requests"]
    with TestClient(system.api()) as client:
        response = client.post(
            "/v1/chat/completions",
            content=text.encode(encoding, "surrogatepass"),
            headers={"authorization": f"Bearer {tokens['app']}", "content-type": "application/json"},
        )
        assert response.status_code == 400 and "same key twice" in response.json()["detail"], response.text
    assert httpx.get(upstream + "/count").json()["requests"] == before
    [refusal] = events(system, "llm.chat")
    assert (refusal.outcome, refusal.reason) == ("denied", "request.invalid")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_tokens": -1_000_000},  # would credit the quota
        {"max_tokens": 0},
        {"max_tokens": "256"},
        {"max_tokens": 2.5},
        {"max_tokens": True},
        {"max_tokens": 10**7},
        {"max_completion_tokens": -5},
        {"n": 0},
        {"n": 1000},
        {"n": "2", "max_tokens": 10},  # the bound itself is fine; the number of choices is not
    ],
)
def test_completion_bounds_that_are_not_positive_whole_numbers_are_400_and_never_sent(
    llm: tuple[Bastion, dict[str, str]], upstream: str, bounds: dict[str, object]
) -> None:
    system, tokens = llm
    before = httpx.get(upstream + "/count").json()["requests"]
    with TestClient(system.api()) as client:
        response = post(client, tokens["app"], "/v1/chat/completions", chat(**bounds))
        assert response.status_code == 400 and response.json()["code"] == "request.invalid", response.text
        assert next(iter(bounds)) in response.json()["detail"]
    assert httpx.get(upstream + "/count").json()["requests"] == before
    [refusal] = events(system, "llm.chat")
    assert (refusal.outcome, refusal.reason) == ("denied", "request.invalid")  # type: ignore[attr-defined]


def test_the_quota_reserves_the_bound_forwarded_and_charges_what_was_used(
    llm: tuple[Bastion, dict[str, str]],
) -> None:
    """A request with no completion bound is forwarded with the one its reservation assumed, so the upstream
    cannot spend past it; what the upstream reports unused goes back to the quota."""
    system, tokens = llm
    with TestClient(system.api()) as client:
        unbounded = post(client, tokens["app"], "/v1/chat/completions", chat())
        assert unbounded.json()["received"] == {"max_tokens": 256, "max_completion_tokens": None, "n": None}
        own = post(client, tokens["app"], "/v1/chat/completions", chat(max_completion_tokens=40, n=2))
        assert own.json()["received"] == {"max_tokens": None, "max_completion_tokens": 40, "n": 2}
        # The daily quota is 2000: each of these reserves 3 + 256 units, and the upstream reports 9 used.
        # Charged by reservation, the seventh would be refused (and the request rate allows ten in a burst).
        answers = [post(client, tokens["app"], "/v1/chat/completions", chat()).status_code for _ in range(8)]
        assert answers == [200] * 8
    served = [e.details for e in events(system, "llm.chat") if e.outcome == "allowed"]  # type: ignore[attr-defined]
    assert len(served) == 10 and {d["charged_units"] for d in served} == {9}
    assert {d["reserved_units"] for d in served} == {3 + 256, 3 + 80}  # "Say hello": 3 units


def test_what_an_upstream_uses_past_the_reservation_is_charged_and_owed(
    llm: tuple[Bastion, dict[str, str]],
) -> None:
    """An upstream that ignores the bound it was sent (the budget bypass: charging the reservation alone)
    reports 1500 units used for a reservation of 13: all 1500 are charged. Two of those spend 3000 of a
    daily quota of 2000 — the second was allowed, as its reservation fit what was left — and the debt
    refuses the next request until it is refilled."""
    system, tokens = llm
    with TestClient(system.api()) as client:
        for _ in range(2):
            answer = post(client, tokens["app"], "/v1/chat/completions", chat(model="verbose", max_tokens=10))
            assert answer.status_code == 200, answer.text
        refused = post(client, tokens["app"], "/v1/chat/completions", chat(max_tokens=10))
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 3600  # 1000 units owed at 2000 a day
    served = [e.details for e in events(system, "llm.chat") if e.outcome == "allowed"]  # type: ignore[attr-defined]
    assert [(d["reserved_units"], d["charged_units"]) for d in served] == [(13, 1500), (13, 1500)]
    assert served[0]["usage"] == {"prompt": 5, "completion": 1495, "total": 1500}


def test_a_stream_is_charged_the_usage_it_reports(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    headers = {"authorization": f"Bearer {tokens['app']}", "content-type": "application/json"}
    with TestClient(system.api()) as client:
        for options in ({"include_usage": True}, None):
            body = chat(model="clean", stream=True, stream_options=options)
            with client.stream(
                "POST", "/v1/chat/completions", content=json.dumps(body), headers=headers
            ) as r:
                assert r.status_code == 200 and list(r.iter_lines())
    charged = [e.details["charged_units"] for e in events(system, "llm.chat")]  # type: ignore[attr-defined]
    assert charged == [7, None]  # without a report, the reservation stands


def test_a_stream_chunk_that_is_not_an_event_ends_the_stream(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    headers = {"authorization": f"Bearer {tokens['app']}", "content-type": "application/json"}
    with TestClient(system.api()) as client:
        body = json.dumps(chat(model="garbled", stream=True))
        with client.stream("POST", "/v1/chat/completions", content=body, headers=headers) as response:
            assert response.status_code == 200
            assert [line for line in response.iter_lines() if line] == ["data: [DONE]"]  # nothing forwarded
    [event] = events(system, "llm.chat")
    assert event.details["cut"] == "upstream sent a malformed chunk"  # type: ignore[attr-defined]


def test_tool_call_arguments_pass_the_output_checks_too(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    headers = {"authorization": f"Bearer {tokens['app']}", "content-type": "application/json"}
    with TestClient(system.api()) as client:
        whole = post(client, tokens["app"], "/v1/chat/completions", chat(model="caller"))
        assert whole.status_code == 422 and whole.json()["reason"] == "output.credential"
        assert "AKIA" not in whole.text
        body = json.dumps(chat(model="caller", stream=True))
        with client.stream("POST", "/v1/chat/completions", content=body, headers=headers) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "FORBIDDEN" not in "".join(lines) and '"output.blocked_pattern"' in lines[2]
    reasons = [e.details.get("cut") or e.reason for e in events(system, "llm.chat")]  # type: ignore[attr-defined]
    assert reasons == ["output.credential", "output.blocked_pattern"]


def test_a_malformed_upstream_answer_is_a_502(llm: tuple[Bastion, dict[str, str]]) -> None:
    system, tokens = llm
    with TestClient(system.api()) as client:
        response = post(client, tokens["app"], "/v1/chat/completions", chat(model="garbled"))
        assert response.status_code == 502 and response.json()["code"] == "llm.upstream_failed"
        no_list = post(client, tokens["app"], "/v1/chat/completions", {"model": "gpt-test", "messages": 5})
        assert no_list.status_code == 400 and "messages" in no_list.json()["detail"]
    assert [e.reason for e in events(system, "llm.chat")] == [  # type: ignore[attr-defined]
        "upstream answered a malformed document",
        "request.invalid",
    ]

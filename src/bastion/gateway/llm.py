"""The LLM proxy: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/embeddings`` forwarded to configured
upstreams, through the same stages as model serving.

- The client's credential authenticates it to Bastion and goes no further; the upstream's credential comes
  from the secrets store (``bastion/upstream/...``) and is injected here.
- Cedar ``llm.chat`` / ``llm.embed`` on the requested model name; per-principal request rate, and a daily
  token quota charged before the call (prompt + the completion it may produce).
- Prompts are scanned: a credential in a prompt is refused, so secrets never leave for an upstream.
- Responses are scanned — and when streamed (SSE), every chunk is checked, against everything streamed so
  far, before it is sent: the stream is cut at the first chunk that completes a blocked pattern.
- One audit event per request: principal, upstream, model, prompt hash and size, tokens, whether cut.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from anyio import to_thread

from bastion.core.errors import (
    AuthenticationRequired,
    BastionError,
    ExitCode,
    InvalidInput,
    NotFound,
    RateLimited,
)
from bastion.core.llm_settings import LlmUpstreamSettings
from bastion.data.pii import PiiEngine
from bastion.gateway.limits import Bucket, Limiter, LimiterUnavailable
from bastion.gateway.validation import names_a_key_twice
from bastion.keys.secrets_store import SecretsStore
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Decision
from bastion.spine.uow import UnitOfWork

DEFAULT_MAX_TOKENS = 256
MAX_COMPLETION_TOKENS = 1_000_000  # a bound on what one request may ask for, far above any model's window
MAX_CHOICES = 128  # OpenAI's own bound on ``n``
MAX_BODY = 4 * 1024 * 1024
UNREADABLE = Resource("llm", "(unreadable request)")


class PromptBlocked(BastionError):
    code = "llm.prompt_blocked"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Prompt refused"


class OutputBlocked(BastionError):
    code = "llm.output_blocked"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Response blocked"


class UpstreamFailed(BastionError):
    code = "llm.upstream_failed"
    status = 502
    exit_code = ExitCode.UNAVAILABLE
    title = "Upstream failed"


def tokens_of(text: str) -> int:
    """An estimate (4 characters a token, like OpenAI's rule of thumb) used for quotas before the call."""
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True, slots=True)
class Prepared:
    upstream: LlmUpstreamSettings
    resource: Resource
    decision: Decision
    body: dict[str, Any]
    details: dict[str, Any]
    quota: Bucket  # the tokens reserved from the daily quota; what the upstream reports unused goes back


class LlmProxy:
    def __init__(
        self,
        uow: UnitOfWork,
        secrets: SecretsStore,
        limiter: Limiter,
        pii: PiiEngine,
        system: Context,
        upstreams: list[LlmUpstreamSettings],
        *,
        principal_rps: float,
        daily_tokens: int,
        blocked_output: list[str],
    ) -> None:
        self._uow, self._secrets, self._limiter, self._pii, self._system = uow, secrets, limiter, pii, system
        self._routes = {model: upstream for upstream in upstreams for model in upstream.models}
        self._rps, self._daily = principal_rps, daily_tokens
        self._blocked = [text.lower() for text in blocked_output if text]

    # -- the stages before the upstream -----------------------------------------------------------------
    def prepare(self, context: Context, action: str, raw: bytes) -> Prepared:
        """Authorize, limit and scan a request; everything refused here is audited with its stage."""
        try:
            body = json.loads(raw) if len(raw) <= MAX_BODY else None
        except ValueError:
            body = None
        # A key named twice: this parser keeps the last, a reader in front of the gateway may keep the first.
        # (Counted on the UTF-8 bytes: the parser also reads UTF-16 and UTF-32.)
        twice = isinstance(body, dict) and names_a_key_twice(_utf8(raw), body)
        if twice or not isinstance(body, dict) or not isinstance(body.get("model"), str):
            # No model to ask about: a caller who has not authenticated is told to, before anything about
            # the body (as when the model is named in the path); either refusal is audited.
            if context.principal.is_anonymous:
                self._uow.refuse(context, action, UNREADABLE, AuthenticationRequired.code)
                raise AuthenticationRequired(f"Authentication is required to {action}.")
            self._uow.refuse(context, action, UNREADABLE, InvalidInput.code)
            if twice:
                raise InvalidInput("The JSON names the same key twice in one object; send each key once.")
            raise InvalidInput("Send an OpenAI-style JSON body with a model name (at most 4 MiB).")
        model = body["model"]
        target = Resource("llm", model)
        decision = self._uow.authorize(context, action, target, details={"model": model})
        try:
            upstream = self._routes.get(model)
            if upstream is None:
                raise NotFound(f"No upstream serves the model {model!r}.")
            prompt = _prompt_text(body, action)
            found = [r.entity_type for r in self._pii.analyze(prompt, entities=["CREDENTIAL"])]
            if found:
                raise PromptBlocked(
                    "The prompt contains a credential; it was not sent.", reason="prompt.credential"
                )
            completion = 0  # embeddings produce no completion
            if action == "llm.chat":
                body = _bounded_completion(body)
                completion = _completion_tokens(body)
            reserved = tokens_of(prompt) + completion
            principal = context.principal.id
            quota = Bucket(f"llm-day:{principal}", self._daily / 86400, self._daily, reserved)
            self._spend([Bucket(f"llm:{principal}", self._rps, max(1.0, self._rps * 2)), quota])
        except BastionError as error:
            self._uow.refuse(context, action, target, f"{error.code}", details={"model": model})
            raise
        details = {
            "model": model,
            "upstream": upstream.name,
            "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
            # (no key named *token*: the audit log refuses secret-shaped field names, and quotas are counts)
            "prompt_units": tokens_of(prompt),
            "reserved_units": reserved,
        }
        return Prepared(upstream, target, decision, body, details, quota)

    async def settle(self, prepared: Prepared, usage: Any) -> int | None:
        """Charge what the upstream reports it used (``usage.total_tokens``) instead of the reservation:
        what it did not use goes back to the daily quota, and what it used past the reservation — an upstream
        that ignored the completion bound, or a prompt that took more tokens than its four-characters-a-token
        estimate (most scripts but Latin) — is charged too, below zero if need be: the quota then grants
        nothing until it has refilled the debt. Without a report the reservation stands; a limiter that
        cannot be reached keeps it as well (and the overrun goes uncharged: it is in the audit record). On a
        thread, like the audit record that follows: a client gone mid-stream cannot cut either short. The
        units charged, when reported."""
        used = usage.get("total_tokens") if isinstance(usage, dict) else None
        if type(used) is not int or used < 0:
            return None
        reserved = int(prepared.quota.cost)
        if used != reserved:
            correction = replace(prepared.quota, cost=used - reserved, owed=True)
            try:
                await to_thread.run_sync(self._limiter.take, [correction])
            except LimiterUnavailable:
                return reserved
        return used

    def _spend(self, buckets: list[Bucket]) -> None:
        try:
            wait = self._limiter.take(buckets)
        except LimiterUnavailable:
            from bastion.gateway.service import LimiterDown  # noqa: PLC0415 - shared error, no cycle at import

            raise LimiterDown("The rate limiter cannot be reached; the request is refused.") from None
        if wait > 0:
            raise RateLimited(
                f"Rate limit or token quota reached; retry in {wait:.0f} s.", retry_after=max(1, round(wait))
            )

    def _headers(self, context: Context, upstream: LlmUpstreamSettings) -> dict[str, str]:
        system = replace(self._system, request_id=context.request_id)
        credential = self._secrets.get(system, upstream.secret).value.get_secret_value()
        return {"authorization": f"Bearer {credential}", "content-type": "application/json"}

    def blocked(self, text: str) -> str | None:
        """Why ``text`` must not reach the client, or None."""
        lowered = text.lower()
        if any(pattern in lowered for pattern in self._blocked):
            return "output.blocked_pattern"
        if self._pii.analyze(text, entities=["CREDENTIAL"]):
            return "output.credential"
        return None

    # -- calls ----------------------------------------------------------------------------------------------
    async def call(self, context: Context, action: str, prepared: Prepared, path: str) -> dict[str, Any]:
        """A whole (non-streamed) response, checked before it is returned."""
        upstream = prepared.upstream
        headers = await to_thread.run_sync(self._headers, context, upstream)
        async with _client(upstream) as client:
            try:
                response = await client.post(upstream.base_url + path, json=prepared.body, headers=headers)
            except httpx.HTTPError as error:
                await self._fail(context, action, prepared, f"upstream: {type(error).__name__}")
                raise UpstreamFailed(f"The upstream {upstream.name} could not be reached.") from None
        if response.status_code != 200:
            await self._fail(context, action, prepared, f"upstream status {response.status_code}")
            raise UpstreamFailed(f"The upstream {upstream.name} answered {response.status_code}.")
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            await self._fail(context, action, prepared, "upstream answered a malformed document")
            raise UpstreamFailed(f"The upstream {upstream.name} answered a malformed document.")
        text = _response_text(document)
        reason = self.blocked(text) if text else None
        if reason:
            await self._fail(context, action, prepared, reason)
            raise OutputBlocked("The response was blocked by the output checks.", reason=reason)
        reported = document.get("usage")
        usage: dict[str, Any] = reported if isinstance(reported, dict) else {}
        details = {
            **prepared.details,
            "completion_chars": len(text),
            "usage": _usage_summary(usage),
            "charged_units": await self.settle(prepared, usage),
        }
        await to_thread.run_sync(
            self._uow.record, context, action, prepared.resource, prepared.decision, details
        )
        return document

    async def stream(
        self, context: Context, action: str, prepared: Prepared, path: str
    ) -> AsyncIterator[bytes]:
        """Server-sent events from the upstream, each checked (against all the text so far) before it is
        forwarded; the stream ends at the first chunk that would complete a blocked pattern."""
        upstream = prepared.upstream
        text, chunks, cut, usage = "", 0, None, None
        headers = await to_thread.run_sync(self._headers, context, upstream)
        try:
            async with (
                _client(upstream) as client,
                client.stream(
                    "POST", upstream.base_url + path, json=prepared.body, headers=headers
                ) as response,
            ):
                if response.status_code != 200:
                    cut = f"upstream status {response.status_code}"
                    yield _sse({"error": {"code": UpstreamFailed.code, "message": "The upstream failed."}})
                    return
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunks += 1
                    try:
                        event = json.loads(data)
                    except ValueError:
                        event = None
                    if not isinstance(event, dict):
                        cut = "upstream sent a malformed chunk"
                        break
                    text += _delta_text(event)
                    usage = event.get("usage") or usage  # the last chunk's, when the client asked for it
                    cut = self.blocked(text)
                    if cut:
                        message = "The response was cut by the output checks."
                        yield _sse({"error": {"code": OutputBlocked.code, "reason": cut, "message": message}})
                        break
                    yield _sse(event)
            yield b"data: [DONE]\n\n"
        except httpx.HTTPError as error:
            cut = f"upstream: {type(error).__name__}"
            yield _sse({"error": {"code": UpstreamFailed.code, "message": "The upstream failed."}})
        finally:
            details = {**prepared.details, "streamed": True, "chunks": chunks, "completion_chars": len(text)}
            details["cut"] = cut
            details["usage"] = _usage_summary(usage)
            details["charged_units"] = await self.settle(prepared, usage)
            record = self._uow.record
            await to_thread.run_sync(record, context, action, prepared.resource, prepared.decision, details)

    async def _fail(self, context: Context, action: str, prepared: Prepared, reason: str) -> None:
        refuse = self._uow.refuse
        await to_thread.run_sync(
            lambda: refuse(context, action, prepared.resource, reason, details=prepared.details)
        )


def _client(upstream: LlmUpstreamSettings) -> httpx.AsyncClient:
    verify: str | bool = str(upstream.ca_file) if upstream.ca_file else True
    return httpx.AsyncClient(verify=verify, timeout=upstream.timeout_s)


def _utf8(raw: bytes) -> bytes:
    """A body the parser read, in UTF-8 (decoded as the parser decodes it: lone surrogates pass)."""
    encoding = json.detect_encoding(raw)
    if encoding in ("utf-8", "utf-8-sig"):
        return raw
    return raw.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")


def _usage_summary(usage: Any) -> dict[str, int]:
    """The upstream's usage report for the audit record (with no key named *token*: the log refuses
    secret-shaped field names)."""
    if not isinstance(usage, dict):
        return {}
    return {str(k).removesuffix("_tokens"): v for k, v in usage.items() if type(v) is int}


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _prompt_text(body: dict[str, Any], action: str) -> str:
    if action == "llm.embed":
        value = body.get("input")
        items = value if isinstance(value, list) else [value]
        return "\n".join(str(item) for item in items if item is not None)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidInput("'messages' must be a list of messages.")
    return "\n".join(text for message in messages for text in _model_text(message))


def _response_text(document: dict[str, Any]) -> str:
    return "\n".join(text for choice in _choices(document) for text in _model_text(choice.get("message")))


def _delta_text(event: dict[str, Any]) -> str:
    return "".join(text for choice in _choices(event) for text in _model_text(choice.get("delta")))


def _choices(document: dict[str, Any]) -> list[dict[str, Any]]:
    choices = document.get("choices")
    return [choice for choice in choices if isinstance(choice, dict)] if isinstance(choices, list) else []


def _model_text(message: Any) -> list[str]:
    """The text of one message (a prompt's, a response's ``message`` or a chunk's ``delta``): its content — a
    string or text parts —, a refusal, and the arguments of tool and function calls. All of it reaches the
    upstream or the client, so all of it is checked: a credential in a tool call's arguments is one too."""
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    parts = content if isinstance(content, list) else [{"text": content}]
    calls = message.get("tool_calls")
    functions = (
        [call.get("function") for call in calls if isinstance(call, dict)] if isinstance(calls, list) else []
    )
    functions.append(message.get("function_call"))
    texts = [part.get("text") for part in parts if isinstance(part, dict)]
    texts.append(message.get("refusal"))
    texts += [function.get("arguments") for function in functions if isinstance(function, dict)]
    return [text for text in texts if isinstance(text, str)]


def _bounded_completion(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request as forwarded: with no completion bound of its own, it gets ``max_tokens`` =
    ``DEFAULT_MAX_TOKENS``, so the upstream cannot produce more than the quota reserved for it (an unbounded
    request would otherwise spend far beyond its reservation: the budget bypass other gateways have)."""
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        return {**body, "max_tokens": DEFAULT_MAX_TOKENS}
    return body


def _completion_tokens(body: dict[str, Any]) -> int:
    """The most the completion may cost: its bound (the larger, if both names are given) times the choices
    asked for. Each must be a positive whole number — a negative one would credit the quota."""
    bounds = [_whole(body, name, MAX_COMPLETION_TOKENS) for name in ("max_tokens", "max_completion_tokens")]
    return max(bound for bound in bounds if bound is not None) * (_whole(body, "n", MAX_CHOICES) or 1)


def _whole(body: dict[str, Any], name: str, most: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= most:
        raise InvalidInput(f"'{name}' must be a whole number from 1 to {most}.")
    return value

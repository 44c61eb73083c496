"""The serving pipeline end to end over HTTP with a real model in isolated worker processes: the answer,
and every rejection path — 401, 403, 413, 415, 422, 429, 503 (worker crash; limiter down), blocked output —
each with its audit event."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.gateway.limits import RedisLimiter
from bastion.gateway.policy import OutputPolicy, ServingPolicy
from bastion.gateway.pool import request_line
from bastion.gateway.service import worker_job
from tests.gateway.conftest import auth
from tests.models.conftest import person


def predict(
    client: TestClient, token: str | None, body: object, **headers: str
) -> tuple[int, dict[str, object]]:
    sent = {"content-type": "application/json", **headers, **(auth(token) if token else {})}
    response = client.post("/v1/models/cancer/predict", content=json.dumps(body), headers=sent)
    return response.status_code, response.json() | {"_headers": dict(response.headers)}


def events(system: Bastion, outcome: str | None = None) -> list[object]:
    found = system.audit.search(operator_context(), AuditFilter(action="models.predict")).events
    return [e for e in found if outcome is None or e.outcome == outcome]


def test_prediction_is_served_protected_and_audited(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    status, body = predict(gateway_client, served["app"], {"inputs": samples})
    assert status == 200, body
    assert body["version"] == 1 and [row["label"] for row in body["outputs"]] == [0, 0, 0]  # type: ignore[index]
    probabilities = body["outputs"][0]["probabilities"]  # type: ignore[index]
    assert set(probabilities) == {"0", "1"} and all(
        len(str(p).split(".")[-1]) <= 4 for p in probabilities.values()
    )
    [event] = events(system, "allowed")
    assert event.details["batch"] == 3 and len(event.details["input_sha256"]) == 64  # type: ignore[attr-defined]
    assert "inputs" not in event.details  # type: ignore[attr-defined]  # raw inputs only if the policy asks
    metrics = gateway_client.get("/metrics", headers=auth(served["sam"]))
    assert metrics.status_code == 200 and 'bastion_predict_requests_total{model="cancer"' in metrics.text
    assert gateway_client.get("/metrics", headers=auth(served["app"])).status_code == 403
    status_doc = gateway_client.get("/v1/models/cancer/serving", headers=auth(served["sam"])).json()
    [worker] = status_doc["workers"].values()
    assert worker["features"] == 30 and worker["alive"] == 1
    assert worker["isolation"]["network"].startswith("isolated") or worker["isolation"]["network"] == "none"


def test_every_rejection_path(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    assert predict(gateway_client, None, {"inputs": samples})[0] == 401
    assert predict(gateway_client, served["vic"], {"inputs": samples})[0] == 403
    big = {"inputs": samples * 2000}
    status, body = predict(gateway_client, served["app"], big)
    assert status == 413 and body["code"] == "request.too_large"
    response = gateway_client.post(
        "/v1/models/cancer/predict",
        content=b"inputs=1",
        headers={**auth(served["app"]), "content-type": "text/plain"},
    )
    assert response.status_code == 415
    status, body = predict(gateway_client, served["app"], {"inputs": [samples[0][:5]]})
    assert status == 422 and body["code"] == "predict.invalid_input" and body["problems"]
    status, body = predict(gateway_client, served["app"], {"inputs": [["a"] * 30]})
    assert status == 422
    deep = {"inputs": samples, "x": json.loads("[" * 40 + "]" * 40)}
    assert predict(gateway_client, served["app"], deep)[0] == 422
    row = ",".join(map(str, samples[0][1:]))
    not_json = [
        b'{"inputs": [[',  # cut short
        ('{"inputs": [[NaN,' + row + "]]}").encode(),  # NaN and Infinity are not JSON numbers
        ('{"inputs": [[Infinity,' + row + "]]}").encode(),
        '{"inputs": [], "note": "caf\u00e9"}'.encode("utf-16"),  # JSON is UTF-8
        b'{"inputs": [[1e5' + b"\xff" + b"]]}",
    ]
    for body in not_json:
        response = gateway_client.post(
            "/v1/models/cancer/predict",
            content=body,
            headers={**auth(served["app"]), "content-type": "application/json"},
        )
        assert response.status_code == 422, body
        assert response.json()["code"] == "predict.invalid_input"
        assert "not valid JSON" in response.json()["detail"]
    # A key named twice: this parser keeps the last, a reader in front of the gateway may keep the first.
    twice = ('{"inputs": [[' + row + ',1]], "inputs": [[' + row + ",2]]}").encode()
    before = len(events(system, "denied"))
    response = gateway_client.post(
        "/v1/models/cancer/predict",
        content=twice,
        headers={**auth(served["app"]), "content-type": "application/json"},
    )
    assert response.status_code == 422 and "same key twice" in response.json()["detail"]
    assert response.headers["content-type"] == "application/problem+json"
    assert len(events(system, "denied")) == before + 1
    refused = events(system, "denied")
    reasons = {e.reason for e in refused}  # type: ignore[attr-defined]
    assert any("request.too_large" in r for r in reasons) and any(
        "predict.invalid_input" in r for r in reasons
    )
    assert any("predict.unsupported_media_type" in r for r in reasons)


def test_rate_limit_429_with_retry_after(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(principal_rps=0.01, principal_burst=2))
    system.gateway._models._entries.clear()
    codes = [predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 429 and int(body["_headers"]["retry-after"]) >= 1  # type: ignore[index]
    assert any("rate.limited" in e.reason for e in events(system, "denied"))  # type: ignore[attr-defined]


def test_worker_crash_is_a_503_and_a_new_worker(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 200
    [pool] = system.gateway._pools.values()
    [worker] = pool.all
    worker.process.kill()  # the model process dies (an out-of-memory kill, a segfault in native code)
    worker.process.wait()
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 503 and body["code"] == "model.worker_failed"
    for _ in range(100):  # the replacement starts in the background (and verifies the model again)
        if pool.all and pool.all[0].alive:
            break
        time.sleep(0.1)
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 200
    assert any("model.worker_failed" in e.reason for e in events(system, "denied"))  # type: ignore[attr-defined]


def test_limiter_down_fails_closed_unless_the_policy_says_open(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    system.gateway._limiter = RedisLimiter("redis://127.0.0.1:1/0", timeout_s=0.1)  # nothing listens there
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 503 and body["code"] == "limiter.unavailable"
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(fail_open=True))
    system.gateway._models._entries.clear()
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 200
    alerts = [e for e in events(system) if e.details.get("severity") == "critical"]  # type: ignore[attr-defined]
    assert alerts and "fail-open" in alerts[0].reason  # type: ignore[attr-defined]


def test_blocked_output_and_label_only(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    sam = person("sam")
    system.gateway.set_policy(sam, "cancer", ServingPolicy(output=OutputPolicy(label_only=True)))
    system.gateway._models._entries.clear()
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 200 and body["outputs"] == [{"label": 0}]
    system.gateway.set_policy(sam, "cancer", ServingPolicy(output=OutputPolicy(blocked_labels=["0"])))
    system.gateway._models._entries.clear()
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 422 and body["code"] == "predict.output_blocked" and body["reason"] == "label.blocked"
    assert any("predict.output_blocked" in e.reason for e in events(system, "denied"))  # type: ignore[attr-defined]


def test_a_models_own_policy_wins_over_the_global_one(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    system.gateway.set_policy(operator_context(), "*", ServingPolicy(output=OutputPolicy(label_only=True)))
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 200 and body["outputs"] == [{"label": 0}]  # the global policy, for a model without one
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy())
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 200 and "probabilities" in body["outputs"][0]  # type: ignore[index]


def test_concurrent_requests_scored_together_each_get_the_answer_they_get_alone(
    gateway_client: TestClient, system: Bastion, served: dict[str, str]
) -> None:
    """Requests that wait for the busy worker are scored in one call of the model (``coalesce``, on by
    default); each gets the answer for its own rows, as when the worker takes one request per call."""
    rows = [list(map(float, row)) for row in load_breast_cancer().data[:80]]
    documents = [{"inputs": rows[i : i + 1 + i % 3]} for i in range(0, 64, 2)]
    generous = {"principal_rps": 1000.0, "principal_burst": 1000}
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(**generous, coalesce=1))  # type: ignore[arg-type]
    alone = [predict(gateway_client, served["app"], document) for document in documents]
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(**generous))  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=len(documents)) as threads:
        together = list(threads.map(lambda d: predict(gateway_client, served["app"], d), documents))
    assert [status for status, _ in together] == [200] * len(documents)
    assert [body["outputs"] for _, body in together] == [body["outputs"] for _, body in alone]
    assert [len(body["outputs"]) for _, body in together] == [len(d["inputs"]) for d in documents]  # type: ignore[arg-type]


def test_the_worker_reads_the_document_the_gateway_validated() -> None:
    """The body is spliced into the worker's request line as sent; whatever it looks like, the worker's parse
    is the gateway's document, on one line."""
    document = {"inputs": [[1.5, -2, 3e-5]], "return_probabilities": False}
    bodies = [
        json.dumps(document).encode(),
        b'{\r\n  "inputs": [[1.5,\n -2, 3e-5]],\n\t"return_probabilities": false\n}\n',
        json.dumps(document).encode("utf-16"),  # json.loads reads UTF-16 too: encoded again
        b"\xef\xbb\xbf" + json.dumps(document).encode(),  # a byte-order mark: encoded again
    ]
    for body in bodies:
        assert json.loads(body.decode("utf-8-sig") if body[:1] != b"\xff" else body) == document
        line = request_line([worker_job(body, document, True, False)])
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        request = json.loads(line)
        assert request["document"] == document and request["op"] == "predict"
        assert request["proba"] is True and request["contributions"] is False
    text = {"inputs": [["naïve\nline"]]}  # a newline inside a string is escaped in JSON: never touched
    line = request_line([worker_job(json.dumps(text, ensure_ascii=False).encode(), text, False, True)])
    assert json.loads(line)["document"] == text


def test_a_cached_key_still_refuses_forgeries_revocation_and_break_glass_pages(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    clock: FrozenClock,
) -> None:
    """Predictions authenticate from the key cache on the event loop; what the cache cannot prove goes the
    whole way — a forged secret for a cached key id is a 401 with its audit event, a revoked key stops
    within the cache window, and every use of the break-glass credential pages."""
    token = served["app"]
    assert predict(gateway_client, token, {"inputs": samples[:1]})[0] == 200  # the key is cached now
    key_id, secret = token[4:20], token[21:]
    forged = f"bst_{key_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    status, body = predict(gateway_client, forged, {"inputs": samples[:1]})
    assert status == 401 and body["code"] == "auth.invalid_credentials"
    refusals = system.audit.search(operator_context(), AuditFilter(action="auth.authenticate")).events
    assert len(refusals) == 1 and secret not in str(refusals[0].details)
    system.identity.revoke_api_key(operator_context(), key_id)
    clock.advance(timedelta(seconds=2))  # the cache window
    assert predict(gateway_client, token, {"inputs": samples[:1]})[0] == 401
    sealed = system.identity.create_break_glass(operator_context())
    for _ in range(2):
        predict(gateway_client, sealed.token, {"inputs": samples[:1]})
    used = system.audit.search(operator_context(), AuditFilter(action="identity.breakglass.used")).events
    assert len(used) == 2


def test_a_pool_whose_worker_could_not_be_replaced_is_started_anew(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 200
    [pool] = system.gateway._pools.values()
    [worker] = pool.all
    loader = system.gateway._loader
    opened = loader.open
    failures: list[str] = []

    def open_once_failing(*args: Any, **kwargs: Any) -> Any:
        if not failures:  # a passing failure (the database, the key manager) just as the worker restarts
            failures.append("open")
            raise RuntimeError("briefly unavailable")
        return opened(*args, **kwargs)

    monkeypatch.setattr(loader, "open", open_once_failing)
    worker.process.kill()
    worker.process.wait()
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 503
    for _ in range(100):  # the replacement fails in the background: no worker, none coming
        if pool.dead:
            break
        time.sleep(0.1)
    assert pool.dead and failures == ["open"]
    assert predict(gateway_client, served["app"], {"inputs": samples[:1]})[0] == 200  # started anew
    assert list(system.gateway._pools.values()) != [pool]


def test_rates_and_quota_are_one_limiter_call_and_bad_input_keeps_its_quota(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    limiter = system.gateway._limiter
    calls: list[list[float]] = []
    spend = limiter.take_async

    async def counted(buckets: list[Any]) -> float:
        calls.append([bucket.cost for bucket in buckets])
        return await spend(buckets)

    limiter.take_async = counted  # type: ignore[method-assign]
    policy = ServingPolicy(principal_rps=1000, principal_burst=1000, daily_units=6)
    system.gateway.set_policy(person("sam"), "cancer", policy)
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200
    assert calls == [[1, 1, 3]]  # rates and the three rows, spent together
    calls.clear()
    bad_rows = [row[:5] for row in samples]  # five features where the model wants thirty
    for _ in range(3):  # refused by the schema, three rows each time: given back, never spent
        status, body = predict(gateway_client, served["app"], {"inputs": bad_rows})
        assert status == 422 and body["code"] == "predict.invalid_input"
    assert calls == [[1, 1, 3], [-3]] * 3
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200  # the other three rows
    status, body = predict(gateway_client, served["app"], {"inputs": samples[:1]})
    assert status == 429 and int(body["_headers"]["retry-after"]) > 1  # type: ignore[index]  # now spent


def test_a_body_that_cannot_be_read_still_spends_the_rate(
    gateway_client: TestClient, system: Bastion, served: dict[str, str], samples: list[list[float]]
) -> None:
    system.gateway.set_policy(person("sam"), "cancer", ServingPolicy(principal_rps=0.01, principal_burst=2))
    unreadable = {**auth(served["app"]), "content-type": "application/json"}
    for _ in range(2):
        response = gateway_client.post("/v1/models/cancer/predict", content=b"{not json", headers=unreadable)
        assert response.status_code == 422
    status, _ = predict(gateway_client, served["app"], {"inputs": samples})
    assert status == 429  # the two unreadable bodies spent the burst
    response = gateway_client.post("/v1/models/cancer/predict", content=b"{not json", headers=unreadable)
    assert response.status_code == 429  # and over the rate, a bad body is refused for the rate first
    refusals = [event.details for event in events(system, "denied")]  # type: ignore[attr-defined]
    assert [d["stage"] for d in refusals].count("input") == 2


@pytest.mark.parametrize("forged_first", [False, True])
def test_two_authorization_headers_are_refused_whichever_comes_first(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    forged_first: bool,
) -> None:
    """Hops disagree on which of two credentials counts; a request carrying two is refused, and audited."""
    good, forged = auth(served["app"]), {"authorization": "Bearer bst_forged_" + "x" * 40}
    first, second = (forged, good) if forged_first else (good, forged)
    headers = [("content-type", "application/json"), *first.items(), *second.items()]
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200  # the good key, cached now
    for _ in range(2):
        response = gateway_client.post(
            "/v1/models/cancer/predict", content=json.dumps({"inputs": samples}), headers=headers
        )
        assert response.status_code == 401 and response.json()["code"] == "auth.invalid_credentials"
        assert served["app"] not in response.text
    refused = system.audit.search(operator_context(), AuditFilter(action="auth.authenticate")).events
    assert len(refused) == 2 and all(e.outcome == "denied" for e in refused)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("content-encoding", "gzip")], 415),  # never inflated: no decompression bomb gets in
        ([("content-encoding", "identity")], 200),
        ([("content-type", "text/plain")], 415),  # a second media type: which one would count?
    ],
)
def test_a_compressed_body_or_two_media_types_are_415_and_audited(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    headers: list[tuple[str, str]],
    status: int,
) -> None:
    body = json.dumps({"inputs": samples}).encode()
    sent = [("content-type", "application/json"), *auth(served["app"]).items(), *headers]
    response = gateway_client.post("/v1/models/cancer/predict", content=body, headers=sent)
    assert response.status_code == status, response.text
    if status == 415:
        assert response.json()["code"] == "predict.unsupported_media_type"
        [refusal] = events(system, "denied")
        assert "predict.unsupported_media_type" in refusal.reason  # type: ignore[attr-defined]


def test_a_model_without_a_production_version_names_the_pinned_route(
    gateway_client: TestClient, served: dict[str, str], samples: list[list[float]]
) -> None:
    response = gateway_client.post(
        "/v1/models/nothing/predict",
        content=json.dumps({"inputs": samples}),
        headers={**auth(served["app"]), "content-type": "application/json"},
    )
    assert response.status_code == 404 and response.json()["code"] == "resource.not_found"
    assert "/v1/models/nothing/versions/VERSION" in response.json()["remedy"]


def test_a_decision_that_must_read_the_policy_or_roles_is_taken_off_the_event_loop(
    gateway_client: TestClient,
    system: Bastion,
    served: dict[str, str],
    samples: list[list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event loop serves every request: a decision whose inputs are cached is taken there, one that must
    read the database first (``decides_at_once`` false) on a thread."""
    authorizer = system.uow._authorizer
    threads: list[str] = []
    decide = authorizer.authorize

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return decide(*args)

    monkeypatch.setattr(authorizer, "authorize", recorded)
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200
    monkeypatch.setattr(system.uow, "decides_at_once", lambda context: True)
    threads.clear()
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200
    assert threads and not any(name.startswith("bastion-offload") for name in threads)
    monkeypatch.setattr(system.uow, "decides_at_once", lambda context: False)
    threads.clear()
    assert predict(gateway_client, served["app"], {"inputs": samples})[0] == 200
    assert threads and all(name.startswith("bastion-offload") for name in threads)

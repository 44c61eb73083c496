"""Three full gateway processes (``bastion up``) sharing one Redis hold one model-wide limit exactly under
concurrent load: the limit is global, not limit x replicas."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.gateway.policy import ServingPolicy
from tests.app.test_up import Server, free_port, start, stop
from tests.gateway.conftest import auth, serve_cancer
from tests.services import REDIS_URL, require

pytestmark = pytest.mark.slow
BURST = 150


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_three_gateways_share_one_exact_model_limit(
    system: Bastion, model_bytes: bytes, samples: list[list[float]], env: dict[str, str], tmp_path: Path
) -> None:
    require("redis", REDIS_URL, 6379)
    tokens = serve_cancer(system, model_bytes)
    # One model-wide bucket of BURST requests that does not refill during the test (principals: unlimited).
    policy = ServingPolicy(model_rps=0.0001, model_burst=BURST, principal_rps=1e4, principal_burst=10**6)
    system.gateway.set_policy(operator_context(), "cancer", policy)
    system.close()
    shared = {
        **env,
        "BASTION_GATEWAY_LIMITER": "redis",
        "BASTION_REDIS_URL": REDIS_URL,
        "BASTION_REDIS_PREFIX": f"test-{secrets.token_hex(6)}:",
    }
    servers: list[Server] = []
    try:
        for _ in range(3):
            servers.append(start(["--port", str(free_port()), "--unsafe-http"], shared, tmp_path))
        urls = [f"{server.url}/v1/models/cancer/predict" for server in servers]
        body = json.dumps({"inputs": samples[:1]})
        headers = {**auth(tokens["app"]), "content-type": "application/json"}

        def call(index: int) -> int:
            response = httpx.post(urls[index % 3], content=body, headers=headers, timeout=60)
            assert response.status_code in (200, 429), response.text
            return response.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(call, range(2 * BURST)))
    finally:
        for server in servers:
            stop(server)
    served = statuses.count(200)
    assert served == BURST, f"{served} served across three replicas for a global burst of {BURST}"
    assert statuses.count(429) == BURST

"""``bastion up`` as a real process: HTTPS with the generated CA, the printed curl line works, the SDK
talks to it, and Ctrl-C shuts it down cleanly. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bastion.client import BastionAPIError, BastionClient

pytestmark = pytest.mark.slow
BASTION = str(Path(sys.executable).with_name("bastion"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    ca: Path
    curl: str
    output: list[str]


def _probe_context(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """Only waiting for the port: no verification of the server, but a client certificate if mTLS asks."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def start(args: list[str], env: dict[str, str], cwd: Path, cert: tuple[Path, Path] | None = None) -> Server:
    process = subprocess.Popen(
        [BASTION, "up", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    curl = url = ca = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Bastion is starting at "):
            url = line.split(" at ", 1)[1].strip()
        if line.startswith("CA certificate: "):
            ca = line.split(": ", 1)[1].strip()
        if line.startswith("Try: "):
            curl = line[5:].strip()
            break
    if not curl:
        process.kill()
        process.wait()
        process.stdout.close()
        pytest.fail("bastion up did not print its curl line:\n" + "".join(lines))
    while time.monotonic() < deadline:  # the listener comes up just after the banner
        try:
            httpx.get(url + "/healthz", verify=_probe_context(cert), timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return Server(process=process, url=url, ca=Path(ca) if ca else Path(), curl=curl, output=lines)


def stop(server: Server) -> tuple[int, str]:
    """Ctrl-C, then the exit code and whatever the server printed after its banner."""
    server.process.send_signal(signal.SIGINT)
    try:
        code = server.process.wait(timeout=30)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    assert server.process.stdout is not None
    rest = server.process.stdout.read()
    server.process.stdout.close()
    return code, rest


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    running = start(["--port", str(free_port())], env, tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()
    if running.process.stdout is not None:
        running.process.stdout.close()


def test_printed_curl_line_gets_200_from_healthz_over_https(server: Server) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    assert server.ca.is_file()
    result = subprocess.run(
        [*shlex.split(server.curl), "--silent", "--show-error", "--fail"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"status":"ok"' in result.stdout.replace(" ", "")


def test_https_refuses_clients_that_do_not_trust_the_ca(server: Server) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(server.url + "/healthz")


def test_sdk_against_a_running_server(server: Server) -> None:
    with BastionClient(server.url, ca_file=server.ca) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready()["status"] == "ready"
        with pytest.raises(BastionAPIError) as raised:
            list(client.audit_events())
    assert raised.value.status == 401
    assert raised.value.code == "auth.required"
    assert raised.value.request_id
    with (
        BastionClient(server.url, ca_file=server.ca, token="not-a-real-token-123") as client,
        pytest.raises(BastionAPIError) as raised,
    ):
        list(client.audit_events())
    assert raised.value.code == "auth.invalid_credentials"
    assert "not-a-real-token" not in "".join(server.output)


def test_ctrl_c_shuts_down_cleanly(server: Server) -> None:
    code, rest = stop(server)
    assert code == 0
    assert "Traceback" not in rest


def test_unsafe_http_on_loopback_serves_with_a_warning(env: dict[str, str], tmp_path: Path) -> None:
    running = start(["--port", str(free_port()), "--unsafe-http"], env, tmp_path)
    try:
        assert running.url.startswith("http://127.0.0.1:")
        assert httpx.get(running.url + "/healthz").json() == {"status": "ok"}
    finally:
        code, rest = stop(running)
    assert code == 0
    assert "plain HTTP" in "".join(running.output) + rest


def test_sdk_with_an_api_key_against_a_running_server(env: dict[str, str], tmp_path: Path) -> None:
    def cli(*argv: str) -> str:
        result = subprocess.run(
            [BASTION, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    cli("init")
    cli("principals", "create", "service:pipeline")
    cli("roles", "assign", "service:pipeline", "auditor")
    token = cli("apikeys", "create", "service:pipeline", "--expires-in-days", "1")
    running = start(["--port", str(free_port())], env, tmp_path)
    try:
        with BastionClient(running.url, ca_file=running.ca, token=token) as client:
            events = list(client.audit_events(action="identity.apikeys.create"))
        assert [event["actor_type"] for event in events] == ["operator"]
    finally:
        _, rest = stop(running)
    assert token not in "".join(running.output) + rest


def test_client_credentials_from_a_running_server_verify_with_an_independent_library(
    env: dict[str, str], tmp_path: Path
) -> None:
    import base64  # noqa: PLC0415
    from urllib.parse import quote_plus  # noqa: PLC0415

    import jwt as pyjwt  # noqa: PLC0415

    def cli(*argv: str) -> str:
        result = subprocess.run(
            [BASTION, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    cli("init")
    cli("principals", "create", "service:etl")
    secret = cli("apikeys", "create", "service:etl")
    running = start(["--port", str(free_port())], env, tmp_path)
    try:
        with httpx.Client(
            base_url=running.url, verify=ssl.create_default_context(cafile=str(running.ca))
        ) as http:
            basic = base64.b64encode(f"{quote_plus('service:etl')}:{quote_plus(secret)}".encode()).decode()
            response = http.post(
                "/oauth/token",
                content="grant_type=client_credentials",
                headers={
                    "authorization": f"Basic {basic}",
                    "content-type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            metadata = http.get("/.well-known/oauth-authorization-server").json()
            jwks = http.get("/.well-known/jwks.json").json()
    finally:
        stop(running)
    kid = pyjwt.get_unverified_header(token)["kid"]
    [jwk] = [key for key in jwks["keys"] if key["kid"] == kid]
    claims = pyjwt.decode(
        token, pyjwt.PyJWK(jwk).key, algorithms=["ES256"], audience="bastion", issuer=metadata["issuer"]
    )
    assert claims["sub"] == "service:etl"
    assert claims["exp"] - claims["iat"] <= 900


def test_fresh_up_serves_the_demo(env: dict[str, str], tmp_path: Path) -> None:
    """The Done-when of the gateway: on a fresh state, the printed prediction curl returns a prediction."""
    running = start(["--port", str(free_port())], {**env, "BASTION_DEMO": "true"}, tmp_path)
    try:
        [line] = [line for line in running.output if line.startswith("Predict: ")]
        result = subprocess.run(
            [*shlex.split(line[len("Predict: ") :]), "--silent", "--show-error", "--fail"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["model"] == "breast-cancer" and answer["outputs"][0]["label"] in (0, 1)
    finally:
        assert stop(running)[0] == 0
    again = start(["--port", str(free_port())], {**env, "BASTION_DEMO": "true"}, tmp_path)
    try:
        assert not [line for line in again.output if line.startswith("Predict: ")]  # only on a fresh state
    finally:
        stop(again)

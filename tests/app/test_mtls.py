"""mTLS against a real ``bastion up`` process: a client with a ``bastion certs``-issued certificate gets in
as its service principal; one without a certificate, or with a certificate from another CA, is refused at the
TLS handshake; a certificate whose principal is disabled is refused (401)."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.app.test_up import BASTION, free_port, start, stop

pytestmark = pytest.mark.slow


def cli(env: dict[str, str], cwd: Path, *argv: str) -> str:
    result = subprocess.run([BASTION, *argv], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def tls(ca: Path, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def foreign_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed client certificate claiming the same principal: not from Bastion's CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service:etl")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("urn:bastion:principal:service:etl")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "forged.pem", directory / "forged-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_mtls_required(env: dict[str, str], tmp_path: Path) -> None:
    cli(env, tmp_path, "init")
    cli(env, tmp_path, "principals", "create", "service:etl")
    cli(env, tmp_path, "roles", "assign", "service:etl", "auditor")
    issued = cli(env, tmp_path, "certs", "issue", "service:etl", "--out", str(tmp_path / "certs"), "--json")
    paths = json.loads(issued)
    cert = (Path(paths["certificate"]), Path(paths["key"]))
    assert Path(paths["key"]).stat().st_mode & 0o777 == 0o600

    running = start(["--port", str(free_port())], {**env, "BASTION_MTLS": "required"}, tmp_path, cert=cert)
    try:
        with httpx.Client(verify=tls(running.ca, cert), timeout=10) as client:
            response = client.get(running.url + "/v1/audit/events", params={"actor": "service:etl"})
            assert response.status_code == 200, response.text
            searched = client.get(running.url + "/v1/audit/events", params={"action": "audit.read"}).json()
            assert searched["events"][0]["auth_method"] == "mtls"
            assert searched["events"][0]["actor_id"] == "service:etl"

        for wrong in (None, foreign_certificate(tmp_path)):
            with (
                pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)),
                httpx.Client(verify=tls(running.ca, wrong), timeout=10) as client,
            ):
                client.get(running.url + "/healthz")

        cli(env, tmp_path, "principals", "disable", "service:etl")
        time.sleep(2.1)  # the documented window: certificate mappings are cached for 2 s
        with httpx.Client(verify=tls(running.ca, cert), timeout=10) as client:
            assert client.get(running.url + "/v1/audit/events").status_code == 401
    finally:
        code, _ = stop(running)
    assert code == 0


def test_mtls_with_plain_http_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [BASTION, "up", "--unsafe-http", "--port", str(free_port())],
        cwd=tmp_path,
        env={**env, "BASTION_MTLS": "required"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "mTLS needs TLS" in result.stderr + result.stdout

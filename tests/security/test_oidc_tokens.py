"""External OIDC tokens, against a real identity provider stand-in: an HTTPS server (its own CA) publishing a
discovery document and a JWKS, and signing RS256 tokens with a key only it holds.

Accepted: a good token (subject, attributes and roles mapped), and token exchange (RFC 8693) from it to a
Bastion token that carries what the exchange established. Refused with 401 and an audit event, never a 5xx:
alg none, HS256 keyed with the public key, algorithms outside the issuer's allowlist, unknown kid (with the
JWKS refetched at most once per interval), embedded jwk / jku / x5u (ignored: keys come only from the JWKS),
expired, not yet valid, issued in the future, wrong issuer, wrong audience, tampered, oversized."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from bastion.app import Bastion, build
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock, SystemClock
from bastion.core.settings import load_settings
from bastion.keys import LocalCA
from bastion.store import migrate

AUDIENCE = "bastion-api"
EVENTS = "/v1/audit/events"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """Serves /.well-known/openid-configuration and /jwks over HTTPS; counts JWKS fetches."""

    def __init__(self, directory: Path) -> None:
        files = LocalCA(directory, SystemClock()).ensure_server_files("127.0.0.1")
        self.ca = files.ca_cert
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "idp-key-1"
        self.jwks_fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": provider.issuer, "jwks_uri": provider.base + "/jwks"}
                elif self.path == "/jwks":
                    provider.jwks_fetches += 1
                    public = RSAKey.import_key(
                        self_public_pem(provider.key), {"kid": provider.kid, "use": "sig", "alg": "RS256"}
                    )
                    body = {"keys": [public.as_dict(private=False)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.server_cert, files.server_key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = self.base + "/realms/ml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return pyjwt.encode(
            claims, self.key, algorithm=header.pop("alg", "RS256"), headers={"kid": self.kid, **header}
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[IdentityProvider]:
    provider = IdentityProvider(tmp_path / "idp")
    yield provider
    provider.close()


@pytest.fixture
def oidc_system(
    tmp_path: Path, database_url: str, clock: FrozenClock, idp: IdentityProvider
) -> Iterator[Bastion]:
    issuer = {
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "principal_prefix": "idp.",
        "principal_claim": "preferred_username",
        "attribute_claims": {"department": "dept", "clearance": "clr"},
        "group_roles": {"ml-auditors": ["auditor"], "nobody": ["security-admin"]},
        "ca_file": str(idp.ca),
        "refresh_min_interval_s": 60,
    }
    settings = load_settings(
        overrides={"state_dir": tmp_path / "state", "database_url": database_url, "oidc_issuers": [issuer]}
    )
    system = build(settings, clock=clock)
    migrate(system.database)
    yield system
    system.close()


@pytest.fixture
def oidc_client(oidc_system: Bastion) -> Iterator[TestClient]:
    with TestClient(oidc_system.api(), raise_server_exceptions=False) as client:
        yield client


def claims(idp: IdentityProvider, clock: FrozenClock, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    base = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "f7c1-uuid",
        "preferred_username": "Ada",
        "dept": "research",
        "clr": "confidential",
        "groups": ["ml-auditors", "unmapped"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_a_good_token_maps_subject_attributes_and_roles(
    oidc_client: TestClient, oidc_system: Bastion, idp: IdentityProvider, clock: FrozenClock
) -> None:
    token = idp.sign(claims(idp, clock))
    response = oidc_client.get(EVENTS, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    [read] = oidc_system.audit.search(
        operator_context(), AuditFilter(action="audit.read", actor="user:idp.ada")
    ).events
    assert read.auth_method == "oidc"
    assert "role:auditor" in read.policy_ids
    # auditors read policies but cannot write them; the unmapped group gives nothing
    assert oidc_client.get("/v1/policies", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert (
        oidc_client.post(
            "/v1/policies", json={"text": ""}, headers={"authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )
    assert idp.jwks_fetches == 1
    oidc_client.get(EVENTS, headers={"authorization": f"Bearer {token}"})
    assert idp.jwks_fetches == 1  # cached


def test_token_exchange_from_an_external_token(
    oidc_client: TestClient, oidc_system: Bastion, idp: IdentityProvider, clock: FrozenClock
) -> None:
    external = idp.sign(claims(idp, clock))
    response = oidc_client.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": external,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "scope": "audit.read",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    ours = body["access_token"]
    jwks = oidc_client.get("/.well-known/jwks.json").json()
    key = pyjwt.PyJWK(jwks["keys"][0])
    decoded = pyjwt.decode(ours, key, algorithms=["ES256"], audience="bastion")
    assert decoded["sub"] == "user:idp.ada"
    assert decoded["ext"]["roles"] == ["auditor"]
    assert decoded["ext"]["attrs"]["department"] == "research"
    assert oidc_client.get(EVENTS, headers={"authorization": f"Bearer {ours}"}).status_code == 200
    # the exchanged token is scoped: it cannot do what the role allows beyond audit.read
    assert oidc_client.get("/v1/policies", headers={"authorization": f"Bearer {ours}"}).status_code == 403


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}, "invalid_request"),
        ({"subject_token": "x", "subject_token_type": "urn:example:saml"}, "invalid_request"),
        (
            {"subject_token": "x", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"},
            "invalid_request",
        ),
        (
            {
                "subject_token": "x",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "actor_token": "y",
            },
            "invalid_request",
        ),
        (
            {
                "subject_token": "x",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "audience": "other",
            },
            "invalid_target",
        ),
        (
            {"subject_token": "bst_x_y", "subject_token_type": "urn:bastion:params:oauth:token-type:api-key"},
            "invalid_request",
        ),
    ],
)
def test_token_exchange_refusals(oidc_client: TestClient, form: dict[str, str], error: str) -> None:
    response = oidc_client.post(
        "/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", **form}
    )
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_token_exchange_from_an_api_key(oidc_client: TestClient, oidc_system: Bastion) -> None:
    ops = operator_context()
    oidc_system.identity.create_principal(ops, "user:analyst")
    oidc_system.identity.assign_role(ops, "user:analyst", "auditor")
    key = oidc_system.identity.create_api_key(ops, "user:analyst", scopes=("audit.*",)).token
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": key,
        "subject_token_type": "urn:bastion:params:oauth:token-type:api-key",
    }
    assert (
        oidc_client.post("/oauth/token", data={**form, "scope": "keys.read"}).json()["error"]
        == "invalid_scope"
    )
    response = oidc_client.post("/oauth/token", data={**form, "scope": "audit.read"})
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert oidc_client.get(EVENTS, headers={"authorization": f"Bearer {token}"}).status_code == 200
    glass = oidc_system.identity.create_break_glass(ops).token
    refused = oidc_client.post("/oauth/token", data={**form, "subject_token": glass})
    assert refused.status_code == 400  # break-glass is used as itself, so every use pages


def attacks(idp: IdentityProvider, clock: FrozenClock) -> dict[str, str]:
    good = claims(idp, clock)
    real = idp.sign(good)
    head, payload, signature = real.split(".")
    public_pem = self_public_pem(idp.key)
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': idp.kid}).encode())}.{payload}"
    hs_mac = b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    now = int(clock.now().timestamp())
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forged_payload = b64(json.dumps({**good, "groups": ["nobody"]}).encode())
    return {
        "alg none": f"{b64(json.dumps({'alg': 'none', 'kid': idp.kid}).encode())}.{payload}.",
        "HS256 keyed with the public key": f"{hs_input}.{hs_mac}",
        "ES256 not on the allowlist": pyjwt.encode(good, ec_key, algorithm="ES256", headers={"kid": idp.kid}),
        "unknown kid": pyjwt.encode(good, attacker, algorithm="RS256", headers={"kid": "rotated-in?"}),
        "embedded jwk": pyjwt.encode(
            good, attacker, algorithm="RS256", headers={"kid": idp.kid, "jwk": attacker_jwk}
        ),
        "jku to an attacker": pyjwt.encode(
            good, attacker, algorithm="RS256", headers={"kid": idp.kid, "jku": "https://evil.example/jwks"}
        ),
        "x5u to an attacker": pyjwt.encode(
            good, attacker, algorithm="RS256", headers={"kid": idp.kid, "x5u": "https://evil.example/c.pem"}
        ),
        "expired": idp.sign(claims(idp, clock, exp=now - 120)),
        "not yet valid": idp.sign(claims(idp, clock, nbf=now + 600)),
        "issued in the future": idp.sign(claims(idp, clock, iat=now + 600)),
        "no iat": idp.sign(claims(idp, clock, iat=None)),
        "wrong issuer": idp.sign(claims(idp, clock, iss=idp.base + "/realms/other")),
        "wrong audience": idp.sign(claims(idp, clock, aud="another-app")),
        "subject that is no principal id": idp.sign(claims(idp, clock, preferred_username="Ada Lovelace/..")),
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered payload": f"{head}.{forged_payload}.{signature}",
        "oversized": idp.sign(claims(idp, clock, pad="x" * 20_000)),
    }


ATTACKS = [
    "alg none",
    "HS256 keyed with the public key",
    "ES256 not on the allowlist",
    "unknown kid",
    "embedded jwk",
    "jku to an attacker",
    "x5u to an attacker",
    "expired",
    "not yet valid",
    "issued in the future",
    "no iat",
    "wrong issuer",
    "wrong audience",
    "subject that is no principal id",
    "tampered signature",
    "tampered payload",
    "oversized",
]


@pytest.mark.parametrize("case", ATTACKS)
def test_forged_external_tokens_are_401_and_audited(
    oidc_client: TestClient, oidc_system: Bastion, idp: IdentityProvider, clock: FrozenClock, case: str
) -> None:
    token = attacks(idp, clock)[case]
    response = oidc_client.get(EVENTS, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    refusals = oidc_system.audit.search(operator_context(), AuditFilter(action="auth.authenticate")).events
    assert len(refusals) == 1


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    oidc_client: TestClient, idp: IdentityProvider, clock: FrozenClock
) -> None:
    forged = attacks(idp, clock)["unknown kid"]
    for _ in range(5):
        assert oidc_client.get(EVENTS, headers={"authorization": f"Bearer {forged}"}).status_code == 401
    assert idp.jwks_fetches == 1
    clock.advance(timedelta(seconds=61))
    oidc_client.get(EVENTS, headers={"authorization": f"Bearer {forged}"})
    assert idp.jwks_fetches == 2


def test_disabling_a_stored_twin_refuses_the_external_tokens(
    oidc_client: TestClient, oidc_system: Bastion, idp: IdentityProvider, clock: FrozenClock
) -> None:
    ops = operator_context()
    oidc_system.identity.create_principal(ops, "user:idp.ada")
    oidc_system.identity.set_disabled(ops, "user:idp.ada", disabled=True)
    token = idp.sign(claims(idp, clock))
    assert oidc_client.get(EVENTS, headers={"authorization": f"Bearer {token}"}).status_code == 401

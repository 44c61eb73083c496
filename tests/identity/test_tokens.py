"""OAuth2 client credentials and the JWT security suite: every malformed, forged, stale or misdirected token
is a 401 with an audit record — never a 5xx — and an independent JOSE library (PyJWT) accepts real ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi.testclient import TestClient

from bastion.app import Bastion
from bastion.app.container import operator_context, system_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.identity.tokens import kid_for
from bastion.policy.defaults import TOKEN_KEY

EVENTS = "/v1/audit/events"
CLIENT = "service:pipeline"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined with ':' and base64-encoded."""
    credentials = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return {
        "authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
        "content-type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def secret(system: Bastion) -> str:
    ops = operator_context()
    system.identity.create_principal(ops, CLIENT)
    system.identity.assign_role(ops, CLIENT, "auditor")
    return system.identity.create_api_key(ops, CLIENT).token


def get_token(client: TestClient, secret: str, **form: str) -> dict[str, Any]:
    response = client.post(
        "/oauth/token",
        content="&".join(f"{k}={v}" for k, v in {"grant_type": "client_credentials", **form}.items()),
        headers=basic(CLIENT, secret),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_client_credentials_token_works_and_verifies_independently(
    client: TestClient, system: Bastion, secret: str
) -> None:
    body = get_token(client, secret)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] <= 15 * 60
    assert client.get(EVENTS, headers={"authorization": f"Bearer {body['access_token']}"}).status_code == 200
    jwks = client.get("/.well-known/jwks.json").json()
    header = pyjwt.get_unverified_header(body["access_token"])
    [jwk] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    claims = pyjwt.decode(
        body["access_token"],
        pyjwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience="bastion",
        issuer=system.tokens.issuer,
    )
    assert claims["sub"] == CLIENT
    assert {"jti", "iat", "nbf", "exp"} <= claims.keys()
    assert claims["exp"] - claims["iat"] <= 15 * 60
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == system.tokens.issuer
    assert metadata["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert metadata["jwks_uri"].endswith("/.well-known/jwks.json")


def test_client_secret_post_is_accepted_too(client: TestClient, secret: str) -> None:
    response = client.post(
        "/oauth/token",
        content=f"grant_type=client_credentials&client_id={quote_plus(CLIENT)}&client_secret={quote_plus(secret)}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ("wrong-secret", "grant_type=client_credentials", 401, "invalid_client"),
        ("other-client", "grant_type=client_credentials", 401, "invalid_client"),
        ("none", "grant_type=client_credentials", 401, "invalid_client"),
        ("good", "grant_type=password&username=a&password=b", 400, "unsupported_grant_type"),
        ("good", "grant_type=client_credentials&scope=*", 400, "invalid_scope"),
        ("good-json", "{}", 400, "invalid_request"),
    ],
)
def test_token_endpoint_refusals(
    client: TestClient, system: Bastion, secret: str, headers: str, body: str, status: int, error: str
) -> None:
    chosen = {
        "wrong-secret": basic(CLIENT, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        "other-client": basic("service:other", secret),
        "none": {"content-type": "application/x-www-form-urlencoded"},
        "good": basic(CLIENT, secret),
        "good-json": {**basic(CLIENT, secret), "content-type": "application/json"},
    }[headers]
    response = client.post("/oauth/token", content=body, headers=chosen)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert secret not in response.text
    if status == 401:
        refusals = system.audit.search(operator_context(), AuditFilter(action="identity.tokens.issue")).events
        assert [(e.outcome, e.reason) for e in refusals] == [("denied", "client authentication failed")]


def _sign_as_bastion(system: Bastion, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token signed by the real signing key with whatever claims a test needs."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    _, der = system.keys.sign(system_context("test"), TOKEN_KEY, signing_input.encode())
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _claims(system: Bastion, clock: FrozenClock, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims = {
        "iss": system.tokens.issuer,
        "aud": "bastion",
        "sub": CLIENT,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j-1",
        "scope": "",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _attacker_es256(header: dict[str, Any], claims: dict[str, Any]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    header = {
        **header,
        "jwk": {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        },
    }
    return pyjwt.encode(claims, key, algorithm="ES256", headers=header)


def forgeries(system: Bastion, clock: FrozenClock, real: str) -> dict[str, str]:
    kid = pyjwt.get_unverified_header(real)["kid"]
    head, payload, signature = real.split(".")
    good = _claims(system, clock)
    public_pem = system.keys.public_key_pem(system_context("test"), TOKEN_KEY)
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{payload}"
    hs_signature = b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_claims = b64(
        json.dumps({**json.loads(base64.urlsafe_b64decode(payload + "==")), "sub": "user:admin"}).encode()
    )
    header = {"alg": "ES256", "kid": kid}
    return {
        "alg none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{payload}.",
        "HS256 keyed with the public key": f"{hs_input}.{hs_signature}",
        "unknown kid": _sign_as_bastion(system, {**header, "kid": "nope"}, good),
        "kid path traversal": _sign_as_bastion(system, {**header, "kid": "../../../etc/passwd"}, good),
        "kid sql injection": _sign_as_bastion(system, {**header, "kid": "x' OR '1'='1"}, good),
        "embedded jwk (attacker key)": _attacker_es256(header, good),
        "jku to an attacker": _attacker_es256({**header, "jku": "https://evil.example/jwks.json"}, good),
        "x5u to an attacker": _attacker_es256({**header, "x5u": "https://evil.example/cert.pem"}, good),
        "expired": _sign_as_bastion(
            system, header, _claims(system, clock, exp=int(clock.now().timestamp()) - 120)
        ),
        "not yet valid": _sign_as_bastion(
            system, header, _claims(system, clock, nbf=int(clock.now().timestamp()) + 600)
        ),
        "issued in the future": _sign_as_bastion(
            system, header, _claims(system, clock, iat=int(clock.now().timestamp()) + 600)
        ),
        "wrong issuer": _sign_as_bastion(system, header, _claims(system, clock, iss="https://evil.example")),
        "wrong audience": _sign_as_bastion(system, header, _claims(system, clock, aud="someone-else")),
        "no jti": _sign_as_bastion(system, header, _claims(system, clock, jti=None)),
        "unknown subject": _sign_as_bastion(system, header, _claims(system, clock, sub="service:ghost")),
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered payload": f"{head}.{other_claims}.{signature}",
        "oversized": f"{head}.{b64(b'x' * 9000)}.{signature}",
        "not a jwt": "definitely-not-a-token",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 keyed with the public key",
        "unknown kid",
        "kid path traversal",
        "kid sql injection",
        "embedded jwk (attacker key)",
        "jku to an attacker",
        "x5u to an attacker",
        "expired",
        "not yet valid",
        "issued in the future",
        "wrong issuer",
        "wrong audience",
        "no jti",
        "unknown subject",
        "tampered signature",
        "tampered payload",
        "oversized",
        "not a jwt",
    ],
)
def test_jwt_attacks_are_401_and_audited(
    client: TestClient, system: Bastion, secret: str, clock: FrozenClock, case: str
) -> None:
    real = get_token(client, secret)["access_token"]
    token = forgeries(system, clock, real)[case]
    response = client.get(EVENTS, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "auth.invalid_credentials"
    refusals = system.audit.search(operator_context(), AuditFilter(action="auth.authenticate")).events
    assert len(refusals) == 1


def test_revoked_jti(client: TestClient, system: Bastion, secret: str, clock: FrozenClock) -> None:
    token = get_token(client, secret)["access_token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert client.get(EVENTS, headers={"authorization": f"Bearer {token}"}).status_code == 200
    system.identity.revoke_token(operator_context(), claims["jti"])
    clock.advance(timedelta(seconds=2))  # the verifier's per-token cache: revocation within seconds
    assert client.get(EVENTS, headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_signing_key_rotation_with_overlap(
    client: TestClient, system: Bastion, secret: str, clock: FrozenClock
) -> None:
    old = get_token(client, secret)["access_token"]
    system.keys.rotate(operator_context(), TOKEN_KEY)
    new = get_token(client, secret)["access_token"]
    assert pyjwt.get_unverified_header(new)["kid"] == kid_for(2)
    for token in (old, new):  # the old kid keeps verifying during the overlap
        assert client.get(EVENTS, headers={"authorization": f"Bearer {token}"}).status_code == 200
    system.keys.destroy(operator_context(), TOKEN_KEY, version=1)  # end of the overlap
    clock.advance(timedelta(seconds=31))  # the verifier's key-set cache
    assert client.get(EVENTS, headers={"authorization": f"Bearer {old}"}).status_code == 401
    assert client.get(EVENTS, headers={"authorization": f"Bearer {new}"}).status_code == 200


@pytest.mark.parametrize(
    ("key_scopes", "requested", "status"),
    [
        (("audit.read",), "audit.read", 200),  # the same scope
        (("audit.*",), "audit.read", 200),  # narrower than the key
        (("audit.*",), "audit.*", 200),
        (("audit.read",), "audit.*", 400),  # wider than the key
        (("audit.read",), "keys.sign", 400),  # outside the key
        ((), "audit.read", 200),  # an unscoped key may ask for any narrowing
    ],
)
def test_requested_scopes_may_only_narrow_the_key(
    client: TestClient, system: Bastion, key_scopes: tuple[str, ...], requested: str, status: int
) -> None:
    ops = operator_context()
    system.identity.create_principal(ops, CLIENT)
    key = system.identity.create_api_key(ops, CLIENT, scopes=key_scopes).token
    response = client.post(
        "/oauth/token",
        content=f"grant_type=client_credentials&scope={quote_plus(requested)}",
        headers=basic(CLIENT, key),
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["scope"] == requested


def test_two_authorization_headers_are_an_invalid_client(client: TestClient, secret: str) -> None:
    good = basic(CLIENT, secret)
    for second in (good["authorization"], basic("service:other", secret)["authorization"]):
        response = client.post(
            "/oauth/token",
            content="grant_type=client_credentials",
            headers=[*good.items(), ("authorization", second)],
        )
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
        assert secret not in response.text

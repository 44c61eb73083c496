"""The OAuth 2.0 token service: short-lived ES256 access tokens.

Issued by the client-credentials grant (RFC 6749 §4.4: the client id is a service principal, the client
secret one of its API keys) and by token exchange (RFC 8693: from an API key or an external OIDC token).
Tokens carry ``iss aud sub iat nbf exp jti scope`` (and, for an external subject, ``ext``: its issuer, roles
and attributes) and a ``kid`` naming the version of the ``bastion/token-signing`` key (P-256, in the key
manager: keyring or HSM) that signed them. The JWKS lists every enabled version, so after a rotation old
tokens verify until they expire; destroying an old version ends them. Verification is joserfc's
(``JwtAuthenticator``); only the signing input is put together here, because the private key never leaves
the key manager.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from bastion.core.clock import Clock
from bastion.core.ids import uuid7
from bastion.keys.errors import KeyNotFound
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyAlgorithm, KeyInfo, KeyPurpose, KeyState
from bastion.policy.defaults import TOKEN_KEY
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork

ALGORITHM = "ES256"
ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)  # the issue's ceiling is 15
AUDIENCE = "bastion"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant type URN


def kid_for(version: int) -> str:
    return f"bastion-token-v{version}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class AccessToken:
    jti: str
    subject: str
    expires_at: datetime
    scope: str
    token: str = field(repr=False)


class TokenService:
    def __init__(self, uow: UnitOfWork, keys: KeyManager, clock: Clock, issuer: str, system: Context) -> None:
        self._uow, self._keys, self._clock = uow, keys, clock
        self.issuer = issuer
        self._system = system

    def _ensure_key(self) -> KeyInfo:
        try:
            return self._keys.describe(self._system, TOKEN_KEY)
        except KeyNotFound:
            return self._keys.create(self._system, TOKEN_KEY, KeyPurpose.SIGN, KeyAlgorithm.ECDSA_P256)

    def key_set(self) -> KeySet:
        """Public keys of every enabled version, as joserfc keys with their kid."""
        info = self._ensure_key()
        keys: list[OctKey | RSAKey | ECKey | OKPKey] = []
        for version in info.versions:
            if version.state is not KeyState.ENABLED:
                continue
            pem = self._keys.public_key_pem(self._system, TOKEN_KEY, version.version)
            keys.append(
                ECKey.import_key(pem, {"kid": kid_for(version.version), "use": "sig", "alg": ALGORITHM})
            )
        return KeySet(keys)

    def jwks(self) -> dict[str, Any]:
        return dict(self.key_set().as_dict(private=False))

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization-server metadata."""
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{self.issuer}/oauth/token",
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "token_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["token"],
        }

    def issue(self, client: Context, scopes: tuple[str, ...]) -> AccessToken:
        """An access token for the authenticated client. Signing happens before the issuance record's own
        transaction (key use is an audited action of its own, and SQLite admits one writer)."""
        now = self._clock.now()
        expires = now + ACCESS_TOKEN_LIFETIME
        jti = str(uuid7())
        scope = " ".join(scopes)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": client.principal.id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
            "scope": scope,
        }
        external = _external_claims(client)
        if external:
            claims["ext"] = external
        for _ in range(2):  # a rotation between reading the version and signing: sign once more
            version = self._ensure_key().primary_version
            header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": kid_for(version)}
            signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            signed_with, der = self._keys.sign(self._system, TOKEN_KEY, signing_input.encode())
            if signed_with == version:
                break
        r, s = decode_dss_signature(der)
        token = f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        details = {"jti": jti, "exp": expires.isoformat(), "scope": scope, "kid": header["kid"]}
        with self._uow.act(
            client, "identity.tokens.issue", Resource("principal", client.principal.id), details=details
        ):
            pass
        return AccessToken(jti=jti, subject=client.principal.id, expires_at=expires, scope=scope, token=token)


def _external_claims(client: Context) -> dict[str, Any] | None:
    """For a subject from an external identity provider (which has no stored record): where it came from and
    the roles and attributes it had there, so the token carries what the exchange established."""
    attributes = client.principal.attributes
    if client.principal.auth_method != "oidc" or "issuer" not in attributes:
        return None
    return {
        "iss": attributes["issuer"],
        "roles": list(attributes.get("roles", ())),
        "attrs": {
            name: value
            for name, value in attributes.items()
            if isinstance(value, str) and name not in ("issuer", "scopes", "roles")
        },
    }

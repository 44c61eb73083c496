"""Accepting access/ID tokens from configured external OIDC issuers (Keycloak, Entra ID, Okta, Auth0...).

JOSE is joserfc's. Per issuer: the JWKS is fetched over verified HTTPS (from ``jwks_uri`` or the issuer's
discovery document), cached, and refreshed when a token names an unknown kid — at most once per
``refresh_min_interval_s``, so random kids cannot turn requests into fetches. Only the issuer's allowlisted
asymmetric algorithms verify (``none`` and HS* never do); ``iss``, ``aud``, ``exp`` and ``iat`` are required,
``nbf`` checked when present, all with the issuer's small leeway. Key-locating headers (``jku``, ``x5u``,
``jwk``, ``x5c``) are ignored: keys come only from the configured JWKS.

The token's subject becomes ``user:<prefix><claim>`` (or ``service:``); configured claims become ABAC
attributes and the token's groups map to Bastion roles. External principals need no stored record, but a
stored one with the same id may hold more roles, and disabling it refuses the tokens.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.core.clock import Clock
from bastion.core.errors import InvalidCredentials
from bastion.core.identity_settings import OidcIssuerSettings
from bastion.identity.jwt_authenticator import validate_claims
from bastion.spine.context import Principal, PrincipalType
from bastion.store.database import Database
from bastion.store.tables import PrincipalRow

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 16_384
MAX_DOCUMENT_BYTES = 1_048_576
FETCH_TIMEOUT_S = 5.0
JWKS_MAX_AGE = timedelta(hours=1)
_ID = re.compile(r"^(user|service):[a-z0-9][a-z0-9._@-]{0,200}$")


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWS claims, read without verifying — only to choose whose keys verify it."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        return None
    try:
        claims = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, TypeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


@dataclass
class _Keys:
    key_set: KeySet | None = None
    fetched_at: datetime | None = None


class IssuerKeys:
    """One issuer's JWKS, fetched lazily and refreshed on an unknown kid (rate-limited)."""

    def __init__(self, settings: OidcIssuerSettings, clock: Clock) -> None:
        self._settings, self._clock = settings, clock
        self._keys = _Keys()
        self._lock = threading.Lock()

    def key_set(self, kid: object) -> KeySet:
        now = self._clock.now()
        keys = self._keys
        known = keys.key_set is not None and any(key.kid == kid for key in keys.key_set.keys)
        stale = keys.fetched_at is None or now - keys.fetched_at > JWKS_MAX_AGE
        may_refresh = keys.fetched_at is None or now - keys.fetched_at >= timedelta(
            seconds=self._settings.refresh_min_interval_s
        )
        if keys.key_set is None or stale or (not known and may_refresh):
            with self._lock:
                if self._keys.fetched_at == keys.fetched_at:  # nobody refreshed meanwhile
                    self._keys = self._fetch(now, keys)
        if self._keys.key_set is None:
            raise InvalidCredentials
        return self._keys.key_set

    def _fetch(self, now: datetime, previous: _Keys) -> _Keys:
        try:
            with httpx.Client(verify=self._tls(), timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
                uri = self._settings.jwks_uri or self._discover(client)
                key_set = KeySet.import_key_set(self._get_json(client, uri))  # type: ignore[arg-type]
        except (httpx.HTTPError, ValueError, TypeError, KeyError, JoseError) as error:
            # Keep serving the keys we had; the next attempt waits for the refresh interval.
            log.warning("JWKS fetch for %s failed: %s", self._settings.issuer, type(error).__name__)
            return _Keys(previous.key_set, now)
        return _Keys(key_set, now)

    def _discover(self, client: httpx.Client) -> str:
        document = self._get_json(
            client, self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        if document.get("issuer") != self._settings.issuer:
            raise ValueError("the discovery document names another issuer")
        uri = document["jwks_uri"]
        if not isinstance(uri, str) or not uri.startswith("https://"):
            raise ValueError("the discovered jwks_uri is not https")
        return uri

    def _get_json(self, client: httpx.Client, url: str) -> dict[str, Any]:
        response = client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document

    def _tls(self) -> ssl.SSLContext:
        ca = self._settings.ca_file
        return ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()


class OidcAuthenticator:
    def __init__(self, database: Database, clock: Clock, issuers: list[OidcIssuerSettings]) -> None:
        self._database, self._clock = database, clock
        self._issuers = {issuer.issuer: (issuer, IssuerKeys(issuer, clock)) for issuer in issuers}

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    def accepts(self, issuer: str | None) -> bool:
        return issuer is not None and issuer in self._issuers

    def authenticate_token(self, token: str) -> Principal:
        issuer = unverified_issuer(token)
        if issuer is None or issuer not in self._issuers:
            raise InvalidCredentials
        settings, keys = self._issuers[issuer]
        try:
            kid = jws.extract_compact(token.encode()).headers().get("kid")
            decoded = jwt.decode(token, keys.key_set(kid), algorithms=list(settings.algorithms))
            claims = decoded.claims
            now = int(self._clock.now().timestamp())
            validate_claims(claims, now, settings.leeway_s, settings.issuer, settings.audience)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise InvalidCredentials from error
        return self._principal(settings, claims)

    def _principal(self, settings: OidcIssuerSettings, claims: dict[str, Any]) -> Principal:
        subject = claims.get(settings.principal_claim)
        if not isinstance(subject, str):
            raise InvalidCredentials
        principal_id = f"{settings.principal_type}:{settings.principal_prefix}{subject}".lower()
        if not _ID.fullmatch(principal_id):
            raise InvalidCredentials
        with self._database.read() as session:
            row = session.get(PrincipalRow, principal_id)
            if row is not None and (row.disabled or row.type != settings.principal_type):
                raise InvalidCredentials
            stored = dict(row.attributes) if row is not None else {}
        groups = claims.get(settings.groups_claim, [])
        groups = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
        roles = sorted({role for group in groups for role in settings.group_roles.get(group, [])})
        mapped = {
            name: claims[claim]
            for name, claim in settings.attribute_claims.items()
            if isinstance(claims.get(claim), str) and len(claims[claim]) <= 256
        }
        attributes = {**mapped, **stored, "roles": tuple(roles), "issuer": settings.issuer}
        return Principal(
            id=principal_id,
            type=PrincipalType(settings.principal_type),
            auth_method="oidc",
            attributes=MappingProxyType(attributes),
        )

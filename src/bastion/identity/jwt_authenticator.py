"""Verifies Bastion access tokens. All JOSE parsing and signature checking is joserfc's.

Fails closed, with one opaque ``InvalidCredentials``, on: anything but ES256 (so ``none`` and HS256-with-the-
public-key are refused before a signature is even considered), a kid not in our key set, a bad signature or
payload, a token over 8 KiB, a missing or wrong ``iss``/``aud``, an ``exp``/``nbf``/``iat`` outside a 30 s
leeway, a revoked ``jti``, or a disabled or unknown subject. Header fields that point elsewhere for keys —
``jku``, ``x5u``, ``jwk``, ``x5c`` — are never followed: keys come only from our own key set.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from bastion.core.cache import TtlCache
from bastion.core.clock import Clock
from bastion.core.errors import InvalidCredentials
from bastion.identity.tokens import ALGORITHM, AUDIENCE, TokenService
from bastion.spine.context import Principal, PrincipalType
from bastion.store.database import Database
from bastion.store.tables import PrincipalRow, RevokedToken

MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
KEYSET_REFRESH = timedelta(seconds=30)  # how soon a destroyed signing-key version stops verifying
UNKNOWN_KID_REFRESH = timedelta(seconds=5)
SUBJECT_CACHE = timedelta(seconds=2)
VERIFIED_CACHE = timedelta(seconds=30)
# A token's subject: its stored type and attributes, None when there is no record, False when refused.
_Subject = tuple[PrincipalType, dict[str, Any]] | bool | None


def validate_claims(
    claims: dict[str, Any],
    now: int,
    leeway: int,
    issuer: str,
    audience: str,
    required: tuple[str, ...] = (),
) -> None:
    """iss and aud exact; exp and iat required, nbf checked when present (and required if named), all within
    ``leeway`` seconds; iat in the future refused. Raises ``InvalidCredentials`` or a joserfc error."""
    options: dict[str, ClaimsOption] = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    options.update({name: {"essential": True} for name in required})
    registry = JWTClaimsRegistry(now=now, leeway=leeway, **options)
    registry.validate(claims)
    if int(claims["iat"]) > now + leeway:
        raise InvalidCredentials


class JwtAuthenticator:
    def __init__(self, database: Database, tokens: TokenService, clock: Clock) -> None:
        self._database, self._tokens, self._clock = database, tokens, clock
        self._keys: KeySet | None = None
        self._loaded_at: datetime | None = None
        self._verified: dict[bytes, tuple[KeySet, int, dict[str, Any]]] = {}
        self._subjects: TtlCache[str, _Subject] = TtlCache(SUBJECT_CACHE)

    def _key_set(self, kid: object) -> KeySet:
        """Cached for 30 s; a kid we do not know (a rotation) reloads it — at most once every 5 s, so random
        kids cannot turn every request into a key-manager round trip."""
        now = self._clock.now()
        age = None if self._loaded_at is None else now - self._loaded_at
        known = (
            self._keys is not None and isinstance(kid, str) and any(key.kid == kid for key in self._keys.keys)
        )
        if (
            self._keys is None
            or age is None
            or age > KEYSET_REFRESH
            or (not known and age > UNKNOWN_KID_REFRESH)
        ):
            self._keys, self._loaded_at = self._tokens.key_set(), now
        return self._keys

    def _subject(self, jti: str, sub: str) -> _Subject:
        """The stored subject (``None`` when there is no record), or ``False`` if the jti is revoked or the
        subject disabled; cached 2 s per jti, so a revocation or a disabled principal takes effect within
        seconds."""
        return self._subjects.get_or_load(jti, self._clock.now(), lambda: self._load_subject(jti, sub))

    def _load_subject(self, jti: str, sub: str) -> _Subject:
        with self._database.read() as session:
            row = session.get(PrincipalRow, sub)
            if session.get(RevokedToken, jti) is not None or (row is not None and row.disabled):
                return False
            return (PrincipalType(row.type), dict(row.attributes)) if row is not None else None

    def _verified_claims(self, token: str) -> dict[str, Any]:
        """Signature and claims checked by joserfc. A token that verified is remembered (by its hash) while
        the same key set is in use and for at most ``VERIFIED_CACHE``; its time claims are checked again on
        every use, and revocation and the subject's state are looked up as for a fresh token."""
        now = int(self._clock.now().timestamp())
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(digest)
        if remembered is not None and remembered[0] is self._keys and now < remembered[1]:
            claims = remembered[2]
            if int(claims["exp"]) + LEEWAY_SECONDS < now:
                raise InvalidCredentials
            return claims
        try:
            kid = jws.extract_compact(token.encode()).headers().get("kid") if token.count(".") == 2 else None
            key_set = self._key_set(kid)
            decoded = jwt.decode(token, key_set, algorithms=[ALGORITHM])
            claims = decoded.claims
            validate_claims(
                claims, now, LEEWAY_SECONDS, self._tokens.issuer, AUDIENCE, required=("sub", "nbf", "jti")
            )
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise InvalidCredentials from error
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = (key_set, now + int(VERIFIED_CACHE.total_seconds()), claims)
        return claims

    def authenticate_token(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidCredentials
        claims = self._verified_claims(token)
        subject = self._subject(str(claims["jti"]), str(claims["sub"]))
        if subject is False:
            raise InvalidCredentials
        if isinstance(subject, tuple):
            principal_type, attributes = subject[0], dict(subject[1])
        else:  # no stored record: only a subject that came through token exchange from an external IdP
            principal_type, attributes = _external(claims)
        scopes = tuple(str(claims.get("scope", "")).split())
        attributes.update(scopes=scopes, token_id=str(claims["jti"]))
        return Principal(
            id=str(claims["sub"]),
            type=principal_type,
            auth_method="jwt",
            attributes=MappingProxyType(attributes),
        )


def _external(claims: dict[str, Any]) -> tuple[PrincipalType, dict[str, Any]]:
    """The roles and attributes an exchanged external token established, as our own token carries them."""
    external = claims.get("ext")
    sub = str(claims["sub"])
    if not isinstance(external, dict) or not sub.startswith(("user:", "service:")):
        raise InvalidCredentials
    roles, attrs = external.get("roles", []), external.get("attrs", {})
    if not isinstance(roles, list) or not isinstance(attrs, dict):
        raise InvalidCredentials
    attributes: dict[str, Any] = {k: v for k, v in attrs.items() if isinstance(v, str)}
    attributes.update(roles=tuple(str(role) for role in roles), issuer=str(external.get("iss", "")))
    return PrincipalType(sub.split(":", 1)[0]), attributes

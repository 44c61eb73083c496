"""Authenticating a request by the client certificate its TLS connection presented.

The TLS layer has already verified the chain to the configured client CA (the handshake fails otherwise).
Here the verified certificate is mapped to a service principal: a certificate issued by ``bastion certs
issue`` names its principal in a SAN URI (``urn:bastion:principal:service:NAME``); any other certificate must
be mapped in ``mtls_principals`` by its SHA-256 fingerprint, a DNS SAN or a URI SAN. The principal must exist,
be a service account and be enabled. Mappings are cached per certificate for ``cache_seconds``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509

from bastion.core.cache import TtlCache
from bastion.core.clock import Clock
from bastion.core.errors import InvalidCredentials
from bastion.keys import PRINCIPAL_URI_PREFIX
from bastion.spine.context import Principal, PrincipalType
from bastion.store.database import Database
from bastion.store.tables import PrincipalRow


class CertificateAuthenticator:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        mapping: dict[str, str],
        *,
        trust_principal_uri: bool = True,
        cache_seconds: float = 2.0,
    ) -> None:
        self._database, self._clock, self._mapping = database, clock, dict(mapping)
        # Only when the client CA is Bastion's own may a certificate name its principal itself.
        self._trust_uri = trust_principal_uri
        self._cache: TtlCache[bytes, Principal | None] = TtlCache(timedelta(seconds=cache_seconds))

    def authenticate_certificate(self, der: bytes) -> Principal:
        """The service principal for a TLS-verified client certificate (DER), or ``InvalidCredentials``."""
        now = self._clock.now()
        key = hashlib.sha256(der).digest()
        principal = self._cache.get_or_load(key, now, lambda: self._resolve(der, now))
        if principal is None:
            raise InvalidCredentials
        return principal

    def _resolve(self, der: bytes, now: datetime) -> Principal | None:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return None
        principal_id = self._principal_id(certificate, der)
        if principal_id is None:
            return None
        with self._database.read() as session:
            row = session.get(PrincipalRow, principal_id)
            if row is None or row.disabled or row.type != PrincipalType.SERVICE.value:
                return None
            attributes = dict(row.attributes)
        attributes["certificate_sha256"] = hashlib.sha256(der).hexdigest()
        return Principal(
            id=principal_id,
            type=PrincipalType.SERVICE,
            auth_method="mtls",
            attributes=MappingProxyType(attributes),
        )

    def _principal_id(self, certificate: x509.Certificate, der: bytes) -> str | None:
        candidates = [f"sha256:{hashlib.sha256(der).hexdigest()}"]
        try:
            sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = x509.SubjectAlternativeName([])
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        if self._trust_uri:
            named = [
                uri.removeprefix(PRINCIPAL_URI_PREFIX) for uri in uris if uri.startswith(PRINCIPAL_URI_PREFIX)
            ]
            if len(named) == 1:
                return named[0]
        candidates += [f"uri:{uri}" for uri in uris]
        candidates += [f"dns:{name}" for name in sans.get_values_for_type(x509.DNSName)]
        mapped = {self._mapping[c] for c in candidates if c in self._mapping}
        return mapped.pop() if len(mapped) == 1 else None  # two mappings that disagree: refuse

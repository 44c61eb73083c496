"""Mapping TLS-verified client certificates to service principals: by the principal a Bastion-issued
certificate names, or by a configured fingerprint / DNS / URI mapping; everything else is refused."""

from __future__ import annotations

import hashlib
import ssl
from datetime import timedelta

import pytest
from cryptography import x509

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.core.clock import FrozenClock
from bastion.core.errors import InvalidCredentials, InvalidInput, NotFound
from bastion.identity.mtls import CertificateAuthenticator


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@pytest.fixture
def issued(system: Bastion) -> bytes:
    ops = operator_context()
    system.identity.create_principal(ops, "service:etl")
    system.identity.create_principal(ops, "user:human")
    return der(system.client_certs.issue(ops, "service:etl", timedelta(days=1)).certificate_pem)


def test_a_bastion_certificate_names_its_principal(system: Bastion, issued: bytes) -> None:
    principal = system.certificates.authenticate_certificate(issued)
    assert (principal.id, principal.auth_method) == ("service:etl", "mtls")
    assert principal.attributes["certificate_sha256"] == hashlib.sha256(issued).hexdigest()
    assert x509.load_der_x509_certificate(issued).extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_only_services_get_certificates(system: Bastion, issued: bytes) -> None:
    ops = operator_context()
    with pytest.raises(InvalidInput):
        system.client_certs.issue(ops, "user:human", timedelta(days=1))
    with pytest.raises(NotFound):
        system.client_certs.issue(ops, "service:ghost", timedelta(days=1))
    with pytest.raises(InvalidInput):
        system.client_certs.issue(ops, "service:etl", timedelta(days=400))


def test_with_a_foreign_ca_only_configured_mappings_count(
    system: Bastion, issued: bytes, clock: FrozenClock
) -> None:
    fingerprint = f"sha256:{hashlib.sha256(issued).hexdigest()}"
    strict = CertificateAuthenticator(system.database, clock, {}, trust_principal_uri=False)
    with pytest.raises(InvalidCredentials):
        strict.authenticate_certificate(issued)  # naming itself is not enough under another CA
    mapped = CertificateAuthenticator(
        system.database, clock, {fingerprint: "service:etl"}, trust_principal_uri=False
    )
    assert mapped.authenticate_certificate(issued).id == "service:etl"
    conflicting = CertificateAuthenticator(
        system.database,
        clock,
        {fingerprint: "service:etl", "uri:urn:bastion:principal:service:etl": "service:other"},
        trust_principal_uri=False,
    )
    with pytest.raises(InvalidCredentials):
        conflicting.authenticate_certificate(issued)


def test_refusals(system: Bastion, issued: bytes, clock: FrozenClock) -> None:
    with pytest.raises(InvalidCredentials):
        system.certificates.authenticate_certificate(b"not a certificate")
    system.identity.set_disabled(operator_context(), "service:etl", disabled=True)
    clock.advance(timedelta(seconds=3))
    with pytest.raises(InvalidCredentials):
        system.certificates.authenticate_certificate(issued)
    system.identity.set_disabled(operator_context(), "service:etl", disabled=False)
    clock.advance(timedelta(days=2))  # past the certificate's lifetime
    with pytest.raises(InvalidCredentials):
        system.certificates.authenticate_certificate(issued)

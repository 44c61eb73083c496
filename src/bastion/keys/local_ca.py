"""A local certificate authority in the state directory, so ``bastion up`` serves HTTPS with no set-up.

The CA (ECDSA P-256, 10 years, path length 0) is made once; the server certificate (90 days) is re-issued
when it nears expiry or no longer covers the host being served. Private keys are written 0600 before any
byte of key material reaches them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.core.clock import Clock
from bastion.core.errors import ConfigError

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=90)
RENEW_BEFORE = timedelta(days=30)
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


PRINCIPAL_URI_PREFIX = "urn:bastion:principal:"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    fingerprint_sha256: str
    serial: str
    not_after: datetime


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


class LocalCA:
    def __init__(self, directory: Path, clock: Clock) -> None:
        # Absolute, so the printed curl line works from any working directory.
        self._dir = directory.resolve()
        self._clock = clock
        self.ca_cert_path = self._dir / "ca.pem"
        self._ca_key_path = self._dir / "ca-key.pem"
        self._server_cert_path = self._dir / "server.pem"
        self._server_key_path = self._dir / "server-key.pem"

    def ensure_server_files(self, host: str) -> TlsFiles:
        """The CA and a server certificate valid now and for ``host``, creating or renewing as needed."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_key, ca_cert = self._load_or_create_ca()
        names = _names_for(host)
        if not self._server_cert_is_current(ca_cert, names):
            self._issue_server_cert(ca_key, ca_cert, names)
        return TlsFiles(self.ca_cert_path, self._server_cert_path, self._server_key_path)

    def _load_or_create_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if self.ca_cert_path.exists() and self._ca_key_path.exists():
            try:
                key = serialization.load_pem_private_key(self._ca_key_path.read_bytes(), password=None)
                cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            except ValueError as error:
                raise ConfigError(
                    f"The local CA in {self._dir} is unreadable.",
                    remedy="Restore it from backup, or delete the directory to create a new CA.",
                ) from error
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ConfigError(f"The local CA key in {self._dir} is not an EC key.")
            return key, cert
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bastion"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Bastion local CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self._ca_key_path, key)
        self.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def _server_cert_is_current(self, ca_cert: x509.Certificate, names: list[x509.GeneralName]) -> bool:
        if not (self._server_cert_path.exists() and self._server_key_path.exists()):
            return False
        try:
            cert = x509.load_pem_x509_certificate(self._server_cert_path.read_bytes())
            cert.verify_directly_issued_by(ca_cert)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
            return False
        fresh = cert.not_valid_after_utc - self._clock.now() > RENEW_BEFORE
        return fresh and all(name in sans for name in names)

    def _issue_server_cert(
        self, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, names: list[x509.GeneralName]
    ) -> None:
        key, cert = self._issue_leaf(
            ca_key, ca_cert, "Bastion server", names, ExtendedKeyUsageOID.SERVER_AUTH, SERVER_LIFETIME
        )
        _write_private(self._server_key_path, key)
        self._server_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue_client_cert(self, principal_id: str, lifetime: timedelta) -> ClientCertificate:
        """A client certificate for service-to-service mTLS: subject CN and SAN URI name the principal
        (``urn:bastion:principal:<id>``), extended key usage clientAuth only. The private key is returned
        once and kept nowhere."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_key, ca_cert = self._load_or_create_ca()
        san = [x509.UniformResourceIdentifier(f"{PRINCIPAL_URI_PREFIX}{principal_id}")]
        key, cert = self._issue_leaf(
            ca_key, ca_cert, principal_id, san, ExtendedKeyUsageOID.CLIENT_AUTH, lifetime
        )
        return ClientCertificate(
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
            private_key_pem=_private_pem(key),
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            serial=format(cert.serial_number, "x"),
            not_after=cert.not_valid_after_utc,
        )

    def _issue_leaf(
        self,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        common_name: str,
        names: Sequence[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        lifetime: timedelta,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return key, cert


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names_for(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for value in (*DEFAULT_NAMES, host):
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            entry = x509.DNSName(value)
        if entry not in names and value not in ("0.0.0.0", "::"):  # noqa: S104 - wildcard binds are not names
            names.append(entry)
    return names


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = _private_pem(key)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)

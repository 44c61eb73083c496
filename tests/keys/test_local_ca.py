"""The local CA: a verifiable chain, private keys 0600, renewal when stale or for a new host."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from bastion.core.clock import FrozenClock
from bastion.core.errors import ConfigError
from bastion.keys import LocalCA


def test_files_are_created_with_private_keys_owner_only(tmp_path: Path, clock: FrozenClock) -> None:
    files = LocalCA(tmp_path / "tls", clock).ensure_server_files("127.0.0.1")
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_real_tls_handshake_verifies_against_the_ca(tmp_path: Path, clock: FrozenClock) -> None:
    files = LocalCA(tmp_path, clock).ensure_server_files("127.0.0.1")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=accept)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(files.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.recv(2) == b"ok"
    thread.join()
    listener.close()


def test_reuses_current_cert_and_renews_when_stale_or_for_new_host(
    tmp_path: Path, clock: FrozenClock
) -> None:
    ca = LocalCA(tmp_path, clock)
    first = ca.ensure_server_files("127.0.0.1").server_cert.read_bytes()
    assert ca.ensure_server_files("127.0.0.1").server_cert.read_bytes() == first
    ca_cert = (tmp_path / "ca.pem").read_bytes()

    renamed = ca.ensure_server_files("bastion.example.internal").server_cert.read_bytes()
    assert renamed != first
    names = (
        x509.load_pem_x509_certificate(renamed)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    assert "bastion.example.internal" in names

    clock.advance(timedelta(days=75))
    assert ca.ensure_server_files("bastion.example.internal").server_cert.read_bytes() != renamed
    assert (tmp_path / "ca.pem").read_bytes() == ca_cert  # the CA itself is kept


def test_corrupt_ca_is_a_clear_error(tmp_path: Path, clock: FrozenClock) -> None:
    LocalCA(tmp_path, clock).ensure_server_files("127.0.0.1")
    (tmp_path / "ca-key.pem").write_text("garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        LocalCA(tmp_path, clock).ensure_server_files("127.0.0.1")

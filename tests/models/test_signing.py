"""OMS model signatures: Bastion's verify with the reference implementation (`model_signing verify key`), the
reference implementation's verify with Bastion, and any change to a signed model is refused."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.errors import InvalidInput, VerificationFailed
from bastion.keys.model import KeyAlgorithm, KeyPurpose
from bastion.models.signing import sign_model, verify_model

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "weights" / "w0.bin").write_bytes(bytes(range(256)) * 1000)
    (root / ".gitignore").write_text("ignored by both sides\n")
    return root


@pytest.fixture
def signing_key(system: Bastion) -> str:
    system.keys.create(operator_context(), "models/release", KeyPurpose.SIGN, KeyAlgorithm.ECDSA_P256)
    return "models/release"


def test_bastion_signature_verifies_with_model_signing(
    system: Bastion, signing_key: str, model: Path, tmp_path: Path
) -> None:
    ops = operator_context()
    manifest, bundle = sign_model(system.keys, ops, signing_key, model)
    assert [name for name, _ in manifest.resources] == ["config.json", "weights/w0.bin"]
    signature, public = tmp_path / "model.sig", tmp_path / "pub.pem"
    signature.write_text(json.dumps(bundle))
    public.write_bytes(system.keys.public_key_pem(ops, signing_key))
    verify = [MODEL_SIGNING, "verify", "key", "--signature", str(signature), "--public_key", str(public)]
    result = subprocess.run([*verify, str(model)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verify_model(model, bundle, public.read_bytes()).root_digest == manifest.root_digest
    signs = system.audit.search(ops, AuditFilter(action="keys.sign", resource_id=signing_key)).events
    assert len(signs) == 1  # signing is an audited key use

    (model / "weights" / "w0.bin").write_bytes(b"swapped weights")
    tampered = subprocess.run([*verify, str(model)], capture_output=True, text=True, check=False)
    assert tampered.returncode != 0
    with pytest.raises(VerificationFailed, match=r"w0\.bin"):
        verify_model(model, bundle, public.read_bytes())


def test_model_signing_signature_verifies_with_bastion(model: Path, tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key_path, signature = tmp_path / "key.pem", tmp_path / "model.sig"
    key_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sign = [MODEL_SIGNING, "sign", "key", "--private_key", str(key_path), "--signature", str(signature)]
    result = subprocess.run([*sign, str(model)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    bundle = json.loads(signature.read_text())
    assert len(verify_model(model, bundle, public).resources) == 2

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(VerificationFailed, match="different public key"):
        verify_model(model, bundle, other_pem)
    (model / "weights" / "extra.bin").write_bytes(b"smuggled in")
    with pytest.raises(VerificationFailed, match=r"extra\.bin"):
        verify_model(model, bundle, public)


def test_forged_signatures_are_refused(system: Bastion, signing_key: str, model: Path) -> None:
    ops = operator_context()
    _, bundle = sign_model(system.keys, ops, signing_key, model)
    public = system.keys.public_key_pem(ops, signing_key)
    forged = json.loads(json.dumps(bundle))
    statement = json.loads(base64.b64decode(forged["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    forged["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_model(model, forged, public)
    for broken in ({}, {"dsseEnvelope": {"payload": "!!", "payloadType": "x", "signatures": []}}):
        with pytest.raises(VerificationFailed):
            verify_model(model, broken, public)
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(InvalidInput, match="symbolic link"):
        sign_model(system.keys, ops, signing_key, model)


def test_a_single_file_model(system: Bastion, signing_key: str, tmp_path: Path) -> None:
    """A single file is its own model: model_signing names its one resource ".", and so must we, or the
    signatures would not travel (they did not, before this test checked it against model_signing)."""
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"\0" * 1024)
    _, bundle = sign_model(system.keys, operator_context(), signing_key, single)
    public = tmp_path / "pub.pem"
    public.write_bytes(system.keys.public_key_pem(operator_context(), signing_key))
    assert [name for name, _ in verify_model(single, bundle, public.read_bytes()).resources] == ["."]
    signature = tmp_path / "model.sig"
    signature.write_text(json.dumps(bundle))
    verify = [MODEL_SIGNING, "verify", "key", "--signature", str(signature), "--public_key", str(public)]
    result = subprocess.run([*verify, str(single)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

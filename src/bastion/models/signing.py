"""Model signatures in the OpenSSF Model Signing (OMS) format, with keys from the key manager.

A model (a directory, or one file) is described by a manifest: every file's SHA-256 under its relative POSIX
path, sorted by path. The manifest becomes an in-toto statement (predicate type
``https://model_signing/signature/v1.0``; the subject's digest is SHA-256 over the file digests in order),
wrapped in a DSSE envelope signed with ECDSA P-256 over the DSSE pre-authentication encoding, inside a
Sigstore bundle v0.3 whose verification material names the public key by the SHA-256 of its PEM. That is what
``model_signing sign key`` writes and ``model_signing verify key`` checks, so signatures travel both ways.

Hashing streams each file in 8 MiB blocks; hashlib releases the GIL, so files are hashed on two threads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.core.digests import file_digest
from bastion.core.errors import InvalidInput, VerificationFailed

if TYPE_CHECKING:  # verifying needs neither: `bastion models verify` stays a light process
    from bastion.keys.manager import KeyManager
    from bastion.spine.context import Context

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# What model_signing leaves out by default; recorded in the signature, so both sides agree on it.
DEFAULT_IGNORED = (".github", ".gitignore", ".git", ".gitattributes")


@dataclass(frozen=True, slots=True)
class Manifest:
    model_name: str
    resources: tuple[tuple[str, str], ...]  # (relative POSIX path, sha256 hex), sorted by path
    ignore_paths: tuple[str, ...]

    @property
    def root_digest(self) -> str:
        hasher = hashlib.sha256()
        for _, digest in self.resources:
            hasher.update(bytes.fromhex(digest))
        return hasher.hexdigest()


def build_manifest(model: Path, ignore_paths: tuple[str, ...] = DEFAULT_IGNORED) -> Manifest:
    """Hash every file of ``model``. Symbolic links are refused (a link could point anywhere)."""
    if model.is_symlink():
        raise InvalidInput(f"{model} is a symbolic link.")
    if model.is_file():
        files = [(".", model)]  # model_signing names a single-file model's one resource "."
    elif model.is_dir():
        files = []
        for root, dirs, names in os.walk(model):
            base = Path(root)
            relative_dir = base.relative_to(model)
            dirs[:] = sorted(d for d in dirs if (relative_dir / d).as_posix() not in ignore_paths)
            for name in names:
                path = base / name
                relative = (relative_dir / name).as_posix()
                if relative in ignore_paths:
                    continue
                if path.is_symlink():
                    raise InvalidInput(f"{relative} is a symbolic link; models are signed without them.")
                files.append((relative, path))
    else:
        raise InvalidInput(f"{model} does not exist.")
    files.sort(key=lambda item: item[0])
    with ThreadPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(file_digest, [path for _, path in files]))
    resources = tuple((name, digest) for (name, _), digest in zip(files, digests, strict=True))
    return Manifest(model.name, resources, tuple(ignore_paths))


def statement(manifest: Manifest) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": manifest.root_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "hash_type": "sha256",
                "method": "files",
                "allow_symlinks": False,
                "ignore_paths": list(manifest.ignore_paths),
            },
            "resources": [
                {"digest": digest, "name": name, "algorithm": "sha256"} for name, digest in manifest.resources
            ],
        },
    }


def pae(payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of an in-toto payload."""
    kind = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_hint(public_pem: bytes) -> str:
    key = serialization.load_pem_public_key(public_pem)
    canonical = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


def bundle(payload: bytes, signature_der: bytes, public_pem: bytes) -> dict[str, Any]:
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(public_pem)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature_der).decode(), "keyid": ""}],
        },
    }


def sign_model(
    keys: KeyManager, context: Context, key_name: str, model: Path
) -> tuple[Manifest, dict[str, Any]]:
    """Sign ``model`` with the key manager's ECDSA P-256 key ``key_name`` (an audited ``keys.sign``)."""
    manifest = build_manifest(model)
    return manifest, sign_statement(keys, context, key_name, statement(manifest))[0]


def sign_statement(
    keys: KeyManager, context: Context, key_name: str, document: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Any in-toto statement as a DSSE envelope in a Sigstore bundle, signed by ``key_name``; returns the
    bundle and the key version that signed it."""
    payload = json.dumps(document, indent=2).encode()
    version, signature = keys.sign(context, key_name, pae(payload))
    return bundle(payload, signature, keys.public_key_pem(context, key_name, version)), version


def verify_model(model: Path, signature: dict[str, Any], public_pem: bytes) -> Manifest:
    """Check the bundle's signature with ``public_pem`` and that ``model`` is exactly what it signed. Raises
    ``VerificationFailed`` naming the first difference."""
    return _check_statement(model, verify_bundle(signature, public_pem))


def verify_bundle(signature: dict[str, Any], public_pem: bytes) -> dict[str, Any]:
    """Check a bundle's DSSE signature with ``public_pem``; returns the signed in-toto statement."""
    try:
        envelope = signature["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        [entry] = envelope["signatures"]
        der = base64.b64decode(entry["sig"], validate=True)
        hint = signature.get("verificationMaterial", {}).get("publicKey", {}).get("hint")
        if envelope["payloadType"] != PAYLOAD_TYPE:
            raise VerificationFailed("The signature does not carry an in-toto statement.")
    except (KeyError, TypeError, ValueError) as error:
        raise VerificationFailed("The signature is not an OMS (Sigstore bundle) signature.") from error
    public_key = serialization.load_pem_public_key(public_pem)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise InvalidInput("Model signatures are ECDSA; the key is not an EC public key.")
    if hint and hint != key_hint(public_pem):
        raise VerificationFailed("The signature names a different public key.")
    digest = hashes.SHA384() if public_key.curve.key_size == 384 else hashes.SHA256()
    try:
        public_key.verify(der, pae(payload), ec.ECDSA(digest))
    except InvalidSignature:
        raise VerificationFailed("The signature does not verify with this key.") from None
    try:
        signed = json.loads(payload)
    except ValueError as error:
        raise VerificationFailed("The signed statement is not JSON.") from error
    if not isinstance(signed, dict):
        raise VerificationFailed("The signed statement is malformed.")
    return signed


def _check_statement(model: Path, signed: dict[str, Any]) -> Manifest:
    try:
        if signed["_type"] != STATEMENT_TYPE or signed["predicateType"] != PREDICATE_TYPE:
            raise VerificationFailed("The statement is not a model signature.")
        serialization_info = signed["predicate"]["serialization"]
        if serialization_info.get("method") != "files" or serialization_info.get("hash_type") != "sha256":
            raise VerificationFailed("Only file-by-file SHA-256 model signatures are checked.")
        claimed = tuple(sorted((r["name"], r["digest"]) for r in signed["predicate"]["resources"]))
        ignore = tuple(serialization_info.get("ignore_paths", ()))
        [subject] = signed["subject"]
        root = subject["digest"]["sha256"]
    except (KeyError, TypeError, ValueError) as error:
        raise VerificationFailed("The signed statement is malformed.") from error
    actual = build_manifest(model, ignore)
    expected = Manifest(actual.model_name, claimed, ignore)
    if expected.root_digest != root:
        raise VerificationFailed("The statement's root digest does not match its resources.")
    if actual.resources != expected.resources:
        missing = {n for n, _ in expected.resources} - {n for n, _ in actual.resources}
        extra = {n for n, _ in actual.resources} - {n for n, _ in expected.resources}
        changed = sorted(
            n for (n, d) in actual.resources if n not in extra and (n, d) not in set(expected.resources)
        )
        raise VerificationFailed(
            f"The model differs from what was signed: changed {changed[:5]}, missing {sorted(missing)[:5]}, "
            f"not signed {sorted(extra)[:5]}."
        )
    return actual

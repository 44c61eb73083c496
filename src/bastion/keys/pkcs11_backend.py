"""Key material in a PKCS#11 token (SoftHSM2 in tests, a real HSM in production) via ``python-pkcs11``.

Keys are generated inside the token as non-extractable, sensitive objects labelled with their reference; wrap
and unwrap are AES-256-GCM operations inside the token; signing happens inside the token (ECDSA signatures
converted from raw r||s to DER so both backends produce the same format). Public keys are read from the token
for verification, never from the database.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters

from bastion.keys.errors import CryptoError, KeyBackendUnavailable, KeyNotFound
from bastion.keys.model import KeyAlgorithm

_CURVES = {KeyAlgorithm.ECDSA_P256: "secp256r1", KeyAlgorithm.ECDSA_P384: "secp384r1"}
_PRIVATE = {Attribute.TOKEN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}


class Pkcs11Backend:
    name = "pkcs11"

    def __init__(self, module: Path, token_label: str, pin: str) -> None:
        try:
            library = pkcs11.lib(str(module))
            token = library.get_token(token_label=token_label)
            self._session = token.open(user_pin=pin, rw=True)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as error:
            raise KeyBackendUnavailable(f"The PKCS#11 token '{token_label}' could not be opened.") from error
        # A PKCS#11 session is not safe for concurrent use: operations are serialised.
        self._lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def _find(self, ref: str, object_class: ObjectClass) -> Any:  # python-pkcs11 types objects loosely
        try:
            return self._session.get_key(object_class=object_class, label=ref)
        except pkcs11.NoSuchKey as error:
            raise KeyNotFound(
                "The key material is not in the token (destroyed, or the wrong token)."
            ) from error

    def generate(self, algorithm: KeyAlgorithm, label: str) -> str:
        ref = f"hk_{secrets.token_hex(12)}"
        with self._lock:
            if algorithm in (KeyAlgorithm.AES256_GCM, KeyAlgorithm.HMAC_SHA256):
                if algorithm is KeyAlgorithm.AES256_GCM:
                    key_type, capabilities = KeyType.AES, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                else:
                    key_type, capabilities = KeyType.GENERIC_SECRET, MechanismFlag.SIGN | MechanismFlag.VERIFY
                self._session.generate_key(
                    key_type, 256, label=ref, store=True, capabilities=capabilities, template=dict(_PRIVATE)
                )
            elif algorithm is KeyAlgorithm.ED25519:
                params = self._session.create_domain_parameters(
                    KeyType.EC_EDWARDS,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")},
                    local=True,
                )
                params.generate_keypair(
                    store=True,
                    label=ref,
                    private_template=dict(_PRIVATE),
                    mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                )
            else:
                params = self._session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])},
                    local=True,
                )
                params.generate_keypair(store=True, label=ref, private_template=dict(_PRIVATE))
        return ref

    def wrap(self, ref: str, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        with self._lock:
            key = self._find(ref, ObjectClass.SECRET_KEY)
            sealed = key.encrypt(
                plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad, 128)
            )
        return nonce + bytes(sealed)

    def unwrap(self, ref: str, wrapped: bytes, aad: bytes) -> bytes:
        with self._lock:
            key = self._find(ref, ObjectClass.SECRET_KEY)
            try:
                return bytes(
                    key.decrypt(
                        wrapped[12:],
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=pkcs11.GCMParams(wrapped[:12], aad, 128),
                    )
                )
            except (pkcs11.PKCS11Error, ValueError) as error:
                raise CryptoError from error

    def sign(self, ref: str, algorithm: KeyAlgorithm, data: bytes) -> bytes:
        with self._lock:
            key = self._find(ref, ObjectClass.PRIVATE_KEY)
            if algorithm is KeyAlgorithm.ED25519:
                return bytes(key.sign(data, mechanism=Mechanism.EDDSA))
            # Hash here, sign the digest in the token: plain CKM_ECDSA is what every token supports.
            digest = hashlib.sha384(data) if algorithm is KeyAlgorithm.ECDSA_P384 else hashlib.sha256(data)
            return bytes(encode_ecdsa_signature(key.sign(digest.digest(), mechanism=Mechanism.ECDSA)))

    def public_key(self, ref: str) -> PublicKeyTypes:
        with self._lock:
            key = self._find(ref, ObjectClass.PUBLIC_KEY)
            if key.key_type == KeyType.EC_EDWARDS:
                point = bytes(key[Attribute.EC_POINT])
                return ed25519.Ed25519PublicKey.from_public_bytes(point[-32:])  # DER OCTET STRING of 32 bytes
            return serialization.load_der_public_key(bytes(encode_ec_public_key(key)))

    def mac(self, ref: str, data: bytes) -> bytes:
        with self._lock:
            return bytes(self._find(ref, ObjectClass.SECRET_KEY).sign(data, mechanism=Mechanism.SHA256_HMAC))

    def destroy(self, ref: str) -> None:
        with self._lock:
            for object_class in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                for found in self._session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: ref}):
                    found.destroy()

"""The key manager on both backends: lifecycle, use, rotation, crypto-shredding, authorization and audit."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.audit import MerkleAuditLog
from bastion.core.clock import FrozenClock
from bastion.core.errors import Conflict, InvalidInput, PermissionDenied
from bastion.keys.backend import KeyBackend
from bastion.keys.errors import CryptoError, KeyNotFound, KeyStateError
from bastion.keys.manager import KeyManager
from bastion.keys.model import KeyAlgorithm, KeyPurpose, KeyState
from bastion.spine import Context, Principal, PrincipalType, UnitOfWork
from bastion.store import Database
from bastion.store.tables import AuditEvent, KeyVersion
from tests.conftest import cedar_authorizer


def audit(db: Database) -> list[AuditEvent]:
    with db.read() as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        session.expunge_all()  # keep their loaded state past the snapshot's rollback
        return rows


def test_create_list_describe(keys: KeyManager, ctx: Context) -> None:
    created = keys.create(ctx, "datasets", KeyPurpose.ENCRYPT)
    assert (created.algorithm, created.primary_version, created.state) == (
        KeyAlgorithm.AES256_GCM,
        1,
        KeyState.ENABLED,
    )
    keys.create(ctx, "models/signing", KeyPurpose.SIGN, KeyAlgorithm.ECDSA_P256)
    assert [info.name for info in keys.list_keys(ctx)] == ["datasets", "models/signing"]
    assert keys.describe(ctx, "datasets").backend == keys.backend_name
    with pytest.raises(Conflict):
        keys.create(ctx, "datasets", KeyPurpose.ENCRYPT)
    with pytest.raises(InvalidInput):
        keys.create(ctx, "Bad Name", KeyPurpose.ENCRYPT)
    with pytest.raises(InvalidInput):
        keys.create(ctx, "x", KeyPurpose.ENCRYPT, KeyAlgorithm.ED25519)
    with pytest.raises(KeyNotFound):
        keys.describe(ctx, "nope")


def test_data_keys_wrap_unwrap_and_rotation(keys: KeyManager, ctx: Context) -> None:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    first = keys.generate_data_key(ctx, "kek", b"object-1")
    assert keys.unwrap(ctx, "kek", first.version, first.wrapped, b"object-1") == first.plaintext
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", first.version, first.wrapped, b"object-2")  # bound to its object
    flipped = first.wrapped[:-1] + bytes([first.wrapped[-1] ^ 1])
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", first.version, flipped, b"object-1")

    keys.rotate(ctx, "kek")
    second = keys.generate_data_key(ctx, "kek", b"object-3")
    assert second.version == 2
    assert keys.unwrap(ctx, "kek", 1, first.wrapped, b"object-1") == first.plaintext  # old version decrypts
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", 2, first.wrapped, b"object-1")  # but the wrong version does not
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", 9, first.wrapped, b"object-1")  # nor a version that never existed
    version, rewrapped = keys.rewrap(ctx, "kek", 1, first.wrapped, b"object-1")
    assert version == 2
    assert keys.unwrap(ctx, "kek", 2, rewrapped, b"object-1") == first.plaintext
    assert repr(first).count(first.plaintext.hex()) == 0


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.ED25519]
)
def test_sign_and_verify(keys: KeyManager, ctx: Context, algorithm: KeyAlgorithm) -> None:
    keys.create(ctx, "signer", KeyPurpose.SIGN, algorithm)
    version, signature = keys.sign(ctx, "signer", b"model digest")
    assert keys.verify(ctx, "signer", version, b"model digest", signature)
    assert not keys.verify(ctx, "signer", version, b"model digesT", signature)
    assert not keys.verify(
        ctx, "signer", version, b"model digest", signature[:-1] + bytes([signature[-1] ^ 1])
    )
    keys.rotate(ctx, "signer")
    assert keys.verify(ctx, "signer", version, b"model digest", signature)  # old versions still verify
    assert b"BEGIN PUBLIC KEY" in keys.public_key_pem(ctx, "signer", version)


def test_mac_and_purpose_enforcement(keys: KeyManager, ctx: Context) -> None:
    keys.create(ctx, "mac", KeyPurpose.MAC)
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    _, tag = keys.mac(ctx, "mac", b"x")
    assert tag == keys.mac(ctx, "mac", b"x")[1]
    assert tag != keys.mac(ctx, "mac", b"y")[1]
    with pytest.raises(KeyStateError):
        keys.sign(ctx, "kek", b"x")
    with pytest.raises(KeyStateError):
        keys.generate_data_key(ctx, "mac", b"x")


def test_disabled_key_refuses_every_use(keys: KeyManager, ctx: Context) -> None:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    data_key = keys.generate_data_key(ctx, "kek", b"o")
    keys.disable(ctx, "kek")
    with pytest.raises(KeyStateError):
        keys.generate_data_key(ctx, "kek", b"o")
    with pytest.raises(KeyStateError):
        keys.unwrap(ctx, "kek", 1, data_key.wrapped, b"o")
    keys.enable(ctx, "kek")
    assert keys.unwrap(ctx, "kek", 1, data_key.wrapped, b"o") == data_key.plaintext


def test_destroy_makes_data_unrecoverable_and_is_audited(
    keys: KeyManager, ctx: Context, kdb: Database, backend: KeyBackend
) -> None:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    data_key = keys.generate_data_key(ctx, "kek", b"o")
    with kdb.read() as session:
        ref = session.execute(select(KeyVersion.backend_ref).where(KeyVersion.version == 1)).scalar_one()
    assert ref is not None
    assert backend.unwrap(ref, data_key.wrapped, b"o") == data_key.plaintext
    keys.rotate(ctx, "kek")
    with pytest.raises(KeyStateError):
        keys.destroy(ctx, "kek", version=2)  # the primary alone: rotate first
    keys.destroy(ctx, "kek", version=1)
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", 1, data_key.wrapped, b"o")
    info = keys.destroy(ctx, "kek")
    assert info.state is KeyState.DESTROYED
    assert all(version.state is KeyState.DESTROYED for version in info.versions)
    with pytest.raises(KeyStateError):
        keys.generate_data_key(ctx, "kek", b"o")
    destroys = [
        event for event in audit(kdb) if event.action == "keys.destroy" and event.outcome == "allowed"
    ]
    assert [event.details["version"] for event in destroys] == [1, "all"]
    # The material is gone from the backend itself, not just marked in the database.
    with pytest.raises(KeyNotFound):
        backend.unwrap(ref, data_key.wrapped, b"o")


def test_every_use_is_audited_without_key_material(keys: KeyManager, ctx: Context, kdb: Database) -> None:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    data_key = keys.generate_data_key(ctx, "kek", b"obj")
    keys.unwrap(ctx, "kek", 1, data_key.wrapped, b"obj")
    with pytest.raises(CryptoError):
        keys.unwrap(ctx, "kek", 1, data_key.wrapped, b"other")
    events = [(e.action, e.outcome, e.resource_id) for e in audit(kdb)]
    assert ("keys.create", "allowed", "kek") in events
    assert ("keys.encrypt", "allowed", "kek") in events
    assert ("keys.decrypt", "allowed", "kek") in events
    assert ("keys.decrypt", "error", "kek") in events
    dump = str([(e.details, e.reason) for e in audit(kdb)])
    for form in (
        data_key.plaintext.hex(),
        base64.b64encode(data_key.plaintext).decode(),
        data_key.wrapped.hex(),
    ):
        assert form not in dump


def test_keys_are_deny_by_default(
    kdb: Database, backend: KeyBackend, clock: FrozenClock, keys: KeyManager, ctx: Context
) -> None:
    keys.create(ctx, "kek", KeyPurpose.ENCRYPT)
    stranger = Principal(id="user:stranger", type=PrincipalType.USER, auth_method="test")
    other = KeyManager(UnitOfWork(kdb, cedar_authorizer(kdb, clock), MerkleAuditLog(), clock), backend, clock)
    for attempt in (
        lambda: other.generate_data_key(Context(stranger), "kek", b"o"),
        lambda: other.create(Context(stranger), "mine", KeyPurpose.ENCRYPT),
        lambda: other.destroy(Context(stranger), "kek"),
        lambda: other.list_keys(Context(stranger)),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    denied = [e for e in audit(kdb) if e.outcome == "denied"]
    assert len(denied) == 4


def test_rotation_report(keys: KeyManager, ctx: Context, clock: FrozenClock) -> None:
    keys.create(ctx, "monthly", KeyPurpose.ENCRYPT, max_age_days=30)
    keys.create(ctx, "forever", KeyPurpose.ENCRYPT)
    assert keys.due_for_rotation(ctx) == []
    clock.advance(timedelta(days=31))
    assert [info.name for info in keys.due_for_rotation(ctx)] == ["monthly"]
    keys.rotate(ctx, "monthly")
    assert keys.due_for_rotation(ctx) == []

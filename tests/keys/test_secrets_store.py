"""The secrets store: encrypted at rest, versioned, bound to name and version, audited, crypto-shredded."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from bastion.core.clock import FrozenClock
from bastion.core.errors import InvalidInput, NotFound, PermissionDenied
from bastion.keys.errors import CryptoError
from bastion.keys.manager import KeyManager
from bastion.keys.secrets_store import SecretsStore
from bastion.spine import Context, Principal, PrincipalType
from bastion.store import Database
from bastion.store.tables import AuditEvent, SecretVersion

VALUE = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@pytest.fixture
def store(keys: KeyManager, clock: FrozenClock) -> SecretsStore:
    return SecretsStore(keys._uow, keys, clock)


def test_put_get_versions(store: SecretsStore, ctx: Context) -> None:
    assert store.put(ctx, "providers/openai", SecretStr(VALUE)).current_version == 1
    assert store.put(ctx, "providers/openai", SecretStr(VALUE + "-v2")).current_version == 2
    assert store.get(ctx, "providers/openai").value.get_secret_value() == VALUE + "-v2"
    assert store.get(ctx, "providers/openai", 1).value.get_secret_value() == VALUE
    assert VALUE not in repr(store.get(ctx, "providers/openai", 1))
    [info] = store.list_secrets(ctx)
    assert (info.name, info.current_version, info.versions) == ("providers/openai", 2, 2)


def test_values_are_encrypted_at_rest_and_never_audited(
    store: SecretsStore, ctx: Context, kdb: Database
) -> None:
    store.put(ctx, "db/main", SecretStr(VALUE))
    store.get(ctx, "db/main")
    with kdb.read() as session:
        stored = session.execute(select(SecretVersion.ciphertext)).scalar_one()
        details = [str(e.details) + e.reason for e in session.scalars(select(AuditEvent))]
        actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert VALUE.encode() not in (stored or b"")
    assert all(VALUE not in text for text in details)
    assert "secrets.write" in actions
    assert "secrets.read" in actions
    assert "keys.decrypt" in actions  # reading a value is also a key use


def test_ciphertext_moved_between_secrets_does_not_open(
    store: SecretsStore, ctx: Context, kdb: Database
) -> None:
    store.put(ctx, "a", SecretStr("value-a"))
    store.put(ctx, "b", SecretStr("value-b"))
    with kdb.transaction() as session:
        source = session.get(SecretVersion, ("a", 1))
        assert source is not None
        session.execute(
            update(SecretVersion)
            .where(SecretVersion.name == "b")
            .values(ciphertext=source.ciphertext, wrapped_key=source.wrapped_key)
        )
    with pytest.raises(CryptoError):
        store.get(ctx, "b")


def test_delete_crypto_shreds(store: SecretsStore, ctx: Context) -> None:
    store.put(ctx, "x", SecretStr(VALUE))
    store.delete(ctx, "x")
    with pytest.raises(NotFound):
        store.get(ctx, "x")
    with pytest.raises(NotFound):
        store.delete(ctx, "nope")


@pytest.mark.parametrize(("name", "value"), [("bad name", "v"), ("ok", ""), ("ok", "x" * 70_000)])
def test_invalid_input(store: SecretsStore, ctx: Context, name: str, value: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(ctx, name, SecretStr(value))


def test_deny_by_default(store: SecretsStore, ctx: Context) -> None:
    store.put(ctx, "x", SecretStr(VALUE))
    stranger = Context(Principal(id="user:eve", type=PrincipalType.USER, auth_method="test"))
    with pytest.raises(PermissionDenied):
        store.get(stranger, "x")
    with pytest.raises(PermissionDenied):
        store.list_secrets(stranger)

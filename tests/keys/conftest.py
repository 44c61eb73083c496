"""Key backends for the tests: the local sealed keyring, and a real SoftHSM2 token over PKCS#11."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bastion.audit import MerkleAuditLog
from bastion.core.clock import FrozenClock
from bastion.keys.backend import KeyBackend
from bastion.keys.local import LocalBackend, MasterKeySource
from bastion.keys.manager import KeyManager
from bastion.keys.pkcs11_backend import Pkcs11Backend
from bastion.spine import Context, Principal, PrincipalType, UnitOfWork
from bastion.store import Database, migrate
from tests.conftest import cedar_authorizer
from tests.services import in_ci

SOFTHSM_MODULE = Path(os.environ.get("BASTION_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
OPERATOR = Principal(id="operator:test", type=PrincipalType.OPERATOR, auth_method="local")
PIN = "24681357"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SoftHSM2 configuration of our own, so tokens live in a temporary directory."""
    if shutil.which("softhsm2-util") is None or not SOFTHSM_MODULE.exists():
        message = "SoftHSM2 is not installed (apt-get install softhsm2)"
        if in_ci():
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    config = root / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(config)
    yield config
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def hsm(softhsm: Path) -> Iterator[Pkcs11Backend]:
    """One token for the session: the PKCS#11 library is initialised once per process, and SoftHSM2 only
    sees tokens that existed then. Tests stay independent because every key has a fresh random label."""
    label = "bastion-test"
    command = [
        "softhsm2-util",
        "--init-token",
        "--free",
        "--label",
        label,
        "--pin",
        PIN,
        "--so-pin",
        "13572468",
    ]
    subprocess.run(
        command, check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(softhsm)}
    )
    backend = Pkcs11Backend(SOFTHSM_MODULE, label, PIN)
    yield backend
    backend.close()


@pytest.fixture(params=["local", pytest.param("pkcs11", marks=pytest.mark.hsm)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> KeyBackend:
    if request.param == "local":
        return LocalBackend(tmp_path / "keyring.bks", MasterKeySource(key_file=tmp_path / "master.key"))
    hsm: Pkcs11Backend = request.getfixturevalue("hsm")
    return hsm


@pytest.fixture
def kdb(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def keys(kdb: Database, backend: KeyBackend, clock: FrozenClock) -> KeyManager:
    uow = UnitOfWork(kdb, cedar_authorizer(kdb, clock), MerkleAuditLog(), clock)
    return KeyManager(uow, backend, clock)


@pytest.fixture
def ctx() -> Context:
    return Context(OPERATOR, source_address="local")


def secret(value: str) -> SecretStr:
    return SecretStr(value)

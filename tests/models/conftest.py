"""People and artifacts for the registry tests: an ML engineer who pushes, two approvers, a security admin."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from types import MappingProxyType

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.models.intake import ThirdParty
from bastion.models.records import VersionInfo
from bastion.spine import Context, Principal, PrincipalType

ROLES = {"alice": "ml-engineer", "bob": "approver", "carol": "approver", "sam": "security-admin"}


CLEARANCE = {"clearance": "confidential"}


def person(name: str) -> Context:
    """The context an authenticator builds for a stored user (its stored attributes included)."""
    principal = Principal(
        id=f"user:{name}",
        type=PrincipalType.USER,
        auth_method="api_key",
        attributes=MappingProxyType(CLEARANCE),
    )
    return Context(principal)


@pytest.fixture
def people(system: Bastion) -> dict[str, Context]:
    ops = operator_context()
    for name, role in ROLES.items():
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", role)
    return {name: person(name) for name in ROLES}


def clean_model() -> bytes:
    """A plain pickle of allowlisted types (what a state dict of plain numbers looks like)."""
    return pickle.dumps(OrderedDict(weights=[0.25, -1.5, 3.0], bias=0.1), protocol=4)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os  # noqa: PLC0415

        return os.system, ("echo pwned",)


def malicious_model() -> bytes:
    return pickle.dumps({"weights": [1.0], "hook": Payload()}, protocol=4)


def push(
    system: Bastion,
    context: Context,
    name: str,
    data: bytes,
    filename: str = "model.pkl",
    *,
    third_party: ThirdParty | None = None,
    chunk: int = 7,
) -> VersionInfo:
    """Stream ``data`` in small chunks, as an HTTP body would arrive."""
    source = io.BytesIO(data)
    with system.intake.receive(context, name, filename, third_party=third_party) as upload:
        while block := source.read(chunk):
            upload.write(block)
        return system.intake.accept(context, upload, third_party=third_party)

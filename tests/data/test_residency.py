"""Residency: data of one region is not stored in, or exported to, another region unless an explicit Cedar
rule allows the transfer; refused and allowed transfers are both audited, and a refusal stores nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.clock import FrozenClock
from bastion.core.errors import PermissionDenied
from bastion.spine import Context
from tests.data.conftest import CSV, SCHEMA, ingest
from tests.gateway.conftest import rebuilt

TRANSFER_US_TO_EU = (
    '@id("us-to-eu")\n'
    'permit(principal, action == Bastion::Action::"data.transfer", resource)\n'
    'when { resource has region && resource.region == "us-east-1" &&\n'
    '       context has destination_region && context.destination_region == "eu-west-1" };'
)


def transfers(system: Bastion) -> list[tuple[str, str, str]]:
    found = system.audit.search(operator_context(), AuditFilter(action="data.transfer")).events
    return [(e.outcome, e.details.get("from"), e.details.get("to")) for e in found]  # type: ignore[attr-defined]


def allow(system: Bastion, clock: FrozenClock, text: str) -> None:
    ops = operator_context()
    system.policies.write(ops, text)
    system.policies.activate(ops, 1)
    clock.advance(timedelta(seconds=3))  # past the policy cache


@pytest.fixture
def eu_deployment(
    system: Bastion, people: dict[str, Context], tmp_path: Path, database_url: str, clock: FrozenClock
) -> Bastion:
    """This deployment stores its data in eu-west-1."""
    deployed = rebuilt(tmp_path, database_url, clock, data_region="eu-west-1")
    yield deployed  # type: ignore[misc]
    deployed.close()


def test_ingesting_another_regions_data_needs_a_transfer_rule(
    eu_deployment: Bastion, people: dict[str, Context], clock: FrozenClock
) -> None:
    dana = people["dana"]
    eu_deployment.datasets.create(dana, "us-customers", SCHEMA, purposes=["analytics"], region="us-east-1")
    with pytest.raises(PermissionDenied):
        ingest(eu_deployment, dana, "us-customers", CSV.encode())
    assert eu_deployment.datasets.describe(dana, "us-customers")[1] == []  # nothing stored
    assert transfers(eu_deployment) == [("denied", "us-east-1", "eu-west-1")]
    allow(eu_deployment, clock, TRANSFER_US_TO_EU)
    stored = ingest(eu_deployment, dana, "us-customers", CSV.encode())
    assert stored.rows == 3
    assert transfers(eu_deployment)[-1] == ("allowed", "us-east-1", "eu-west-1")


def test_a_dataset_of_the_deployments_region_needs_no_rule(
    eu_deployment: Bastion, people: dict[str, Context]
) -> None:
    dana = people["dana"]
    eu_deployment.datasets.create(dana, "eu-customers", SCHEMA, purposes=["analytics"], region="eu-west-1")
    assert ingest(eu_deployment, dana, "eu-customers", CSV.encode()).rows == 3
    assert transfers(eu_deployment) == []


def test_export_to_another_region_is_refused_without_a_rule(
    system: Bastion, people: dict[str, Context], customers: str, tmp_path: Path, clock: FrozenClock
) -> None:
    dana = people["dana"]
    ingest(system, dana, customers, CSV.encode())
    out = tmp_path / "out.csv"
    with pytest.raises(PermissionDenied):
        system.data_export.export(replace(dana, destination="us-east-1"), customers, None, "csv", out)
    assert not out.exists()
    assert transfers(system) == [("denied", "eu-west-1", "us-east-1")]
    system.data_export.export(dana, customers, None, "csv", out)  # staying in the region: no rule needed
    assert out.exists()
    allow(
        system,
        clock,
        '@id("eu-to-us")\npermit(principal, action == Bastion::Action::"data.transfer", resource)\n'
        'when { resource has region && resource.region == "eu-west-1" &&\n'
        '       context has destination_region && context.destination_region == "us-east-1" };',
    )
    system.data_export.export(replace(dana, destination="us-east-1"), customers, None, "csv", out)
    assert transfers(system)[-1] == ("allowed", "eu-west-1", "us-east-1")


def test_a_malformed_destination_is_refused() -> None:
    with pytest.raises(Exception, match="destination region"):
        Context(operator_context().principal, destination="EU West!")

"""Labelling integrity: only labellers bound to the dataset write labels, every change is a new audited
revision, and the report catches an injected poisoning labeller — against consensus and against a
reference model — without flagging honest labellers who make ordinary mistakes."""

from __future__ import annotations

import random

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.errors import PermissionDenied
from bastion.spine import Context, Resource
from tests.data.conftest import CLEARANCE, person

HONEST = ["h1", "h2", "h3", "h4", "h5"]
CLASSES = ["cat", "dog", "bird"]


def noisy(rng: random.Random, label: str, error_rate: float) -> str:
    return rng.choice(CLASSES) if rng.random() < error_rate else label


@pytest.fixture
def labellers(system: Bastion, people: dict[str, Context], customers: str) -> list[str]:
    ops = operator_context()
    for name in [*HONEST, "mallory", "other"]:
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
    for name in [*HONEST, "mallory"]:  # bound to this dataset only
        system.identity.assign_role(ops, f"user:{name}", "labeller", resource=Resource("dataset", customers))
    system.identity.assign_role(  # "other" labels another dataset
        ops, "user:other", "labeller", resource=Resource("dataset", "elsewhere")
    )
    return [*HONEST, "mallory"]


def test_only_bound_labellers_write_and_changes_are_audited_revisions(
    system: Bastion, people: dict[str, Context], customers: str, labellers: list[str]
) -> None:
    assert system.labels.write(person("h1"), customers, {"item-1": "cat", "item-2": "dog"}) == 2
    assert system.labels.write(person("h1"), customers, {"item-1": "dog", "item-2": "dog"}) == 1
    history = system.labels.history(people["dana"], customers, "item-1")
    assert [(h["label"], h["revision"], h["current"]) for h in history] == [
        ("cat", 1, False),
        ("dog", 2, True),
    ]
    for outsider in (person("other"), people["dana"], people["eli"]):  # wrong dataset; steward; engineer
        with pytest.raises(PermissionDenied):
            system.labels.write(outsider, customers, {"item-1": "bird"})
    events = system.audit.search(operator_context(), AuditFilter(action="data.label")).events
    assert [e.outcome for e in events] == ["allowed", "allowed", "denied", "denied", "denied"]
    assert events[1].details["revised"] == 2  # type: ignore[attr-defined]


def test_the_report_catches_a_poisoning_labeller(
    system: Bastion, people: dict[str, Context], customers: str, labellers: list[str]
) -> None:
    rng = random.Random(7)
    truth = {f"item-{i}": rng.choice(CLASSES) for i in range(200)}
    for name in HONEST:  # careful people: 8% honest mistakes
        given = {
            item: (rng.choice(CLASSES) if rng.random() < 0.08 else label) for item, label in truth.items()
        }
        system.labels.write(person(name), customers, given)
    # The attacker flips "cat" to "dog" wherever it appears — a targeted poisoning, ~a third of the items.
    poisoned = {item: ("dog" if label == "cat" else label) for item, label in truth.items()}
    system.labels.write(person("mallory"), customers, poisoned)
    model = {item: noisy(rng, label, 0.1) for item, label in truth.items()}

    report = {score.labeller: score for score in system.labels.report(people["dana"], customers, model)}
    flagged = sorted(who for who, score in report.items() if score.flagged)
    assert flagged == ["user:mallory"]
    mallory = report["user:mallory"]
    assert mallory.disagreement > 0.25 and mallory.model_disagreement is not None
    assert "consensus" in (mallory.reason or "")
    assert all(report[f"user:{name}"].disagreement < 0.15 for name in HONEST)


def test_with_no_poisoner_nobody_is_flagged(
    system: Bastion, people: dict[str, Context], customers: str, labellers: list[str]
) -> None:
    rng = random.Random(11)
    truth = {f"item-{i}": rng.choice(CLASSES) for i in range(150)}
    for name in labellers:
        given = {
            item: (rng.choice(CLASSES) if rng.random() < 0.1 else label) for item, label in truth.items()
        }
        system.labels.write(person(name), customers, given)
    assert [s for s in system.labels.report(people["dana"], customers) if s.flagged] == []

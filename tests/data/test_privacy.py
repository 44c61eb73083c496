"""Differential privacy: the noise has the scale the mechanism's parameters say (measured on many releases),
OpenDP's privacy maps agree with what is charged, composition is what the theorems give, and queries stop
at the budget — every spend and every refusal audited, nothing released past it."""

from __future__ import annotations

import math
import statistics
from typing import Any

import opendp.prelude as dp
import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.core.errors import InvalidInput, PermissionDenied
from bastion.data import privacy
from bastion.data.privacy import DpQuery
from bastion.data.private_queries import BudgetExhausted
from bastion.data.schema import PrivacyBudget, parse_schema
from bastion.spine import Context
from tests.data.conftest import CLEARANCE, CSV, SCHEMA, ingest, person

SAMPLES = 4000
ROWS: list[dict[str, Any]] = [{"age": 20 + i % 60, "zip": "10115"} for i in range(500)]
AGES = parse_schema({
    "fields": [
        {"name": "age", "type": "integer", "minimum": 0, "maximum": 130},
        {"name": "zip", "type": "string", "allowed": ["10115", "10117"]},
    ]
})  # fmt: skip


def spread(query: DpQuery) -> tuple[float, float]:
    """The empirical standard deviation of many releases, and the noise scale the mechanism reported."""
    releases = [privacy.release(ROWS, AGES, query) for _ in range(SAMPLES)]
    return statistics.pstdev(r.value for r in releases), releases[0].scale


def test_laplace_noise_has_the_scale_sensitivity_over_epsilon() -> None:
    deviation, scale = spread(DpQuery(kind="sum", field="age", epsilon=0.5))
    assert scale == pytest.approx(130 / 0.5)  # sensitivity: the declared bound, max(|0|, |130|)
    assert deviation == pytest.approx(math.sqrt(2) * scale, rel=0.08)  # Laplace(b): sd = sqrt(2) b


def test_gaussian_noise_has_the_scale_its_epsilon_and_delta_give() -> None:
    epsilon, delta = 1.0, 1e-6
    query = DpQuery(kind="sum", field="age", epsilon=epsilon, mechanism="gaussian", delta=delta)
    deviation, sigma = spread(query)
    domain, metric = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    assert sigma == pytest.approx(privacy.gaussian_scale("float", 130, epsilon, delta))
    assert deviation == pytest.approx(sigma, rel=0.08)
    # OpenDP's own accounting of that sigma: within epsilon, and tight (no noise wasted).
    gaussian = dp.m.make_gaussian(domain, metric, scale=sigma)
    spent = dp.c.make_zCDP_to_approxDP(gaussian).map(130.0).epsilon(delta)
    assert 0.97 * epsilon <= spent <= epsilon * (1 + 1e-9)


def test_count_histogram_mean_and_quantile_are_near_the_truth_at_a_generous_epsilon() -> None:
    count = privacy.release(ROWS, AGES, DpQuery(kind="count", epsilon=5))
    assert abs(count.value - 500) <= 10
    histogram = privacy.release(ROWS, AGES, DpQuery(kind="histogram", field="zip", epsilon=5))
    assert abs(histogram.value["10115"] - 500) <= 10 and abs(histogram.value["10117"]) <= 10
    mean = privacy.release(ROWS, AGES, DpQuery(kind="mean", field="age", epsilon=5))
    assert abs(mean.value - statistics.mean(r["age"] for r in ROWS)) < 3
    median = privacy.release(ROWS, AGES, DpQuery(kind="quantile", field="age", epsilon=5, q=0.5))
    assert abs(median.value - 49.5) < 6


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"kind": "sum", "epsilon": 1}, "needs a field"),
        ({"kind": "count", "epsilon": 0}, "greater than 0"),
        ({"kind": "count", "epsilon": 1, "mechanism": "gaussian"}, "needs a delta"),
        ({"kind": "quantile", "field": "age", "epsilon": 1}, "needs q"),
    ],
)
def test_malformed_queries_are_refused(query: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DpQuery.model_validate(query)


def test_composition_basic_and_advanced() -> None:
    assert privacy.composed([(0.5, 0.0)] * 4, 0.0).epsilon == pytest.approx(2.0)
    assert privacy.composed([(0.1, 1e-7), (0.2, 0.0)], 0.0).delta == pytest.approx(1e-7)
    many = [(0.01, 0.0)] * 1000  # many small queries: advanced composition beats the sum of 10
    total = privacy.composed(many, 1e-6)
    squares, mean_loss = 1000 * 0.01**2, 1000 * 0.01 * math.expm1(0.01) / (math.exp(0.01) + 1)
    drv = mean_loss + math.sqrt(2 * squares * math.log(1 / 1e-6))
    kov = mean_loss + math.sqrt(2 * squares * math.log(math.e + math.sqrt(squares) / 1e-6))
    expected = min(drv, kov)
    assert total.epsilon == pytest.approx(expected) and total.epsilon < 10
    assert total.delta == pytest.approx(1e-6)
    assert privacy.within(PrivacyBudget(epsilon=1.0, delta=1e-6), [(0.6, 0.0), (0.5, 0.0)])[0] is False


@pytest.fixture
def budgeted(system: Bastion, people: dict[str, Context]) -> str:
    schema = {**SCHEMA, "privacy_budget": {"epsilon": 1.0, "delta": 1e-6}}
    system.datasets.create(people["dana"], "survey", schema, purposes=["analytics"], region="eu-west-1")
    ingest(system, people["dana"], "survey", CSV.encode())
    ops = operator_context()
    for name in ("ann", "ben"):
        system.identity.create_principal(ops, f"user:{name}", attributes=CLEARANCE)
        system.identity.assign_role(ops, f"user:{name}", "analyst")
    return "survey"


def events(system: Bastion, outcome: str) -> list[Any]:
    found = system.audit.search(operator_context(), AuditFilter(action="data.query")).events
    return [e for e in found if e.outcome == outcome]


def test_queries_stop_at_the_budget_and_every_spend_is_audited(
    system: Bastion, people: dict[str, Context], budgeted: str
) -> None:
    ann, ben = person("ann"), person("ben")
    count = DpQuery(kind="count", epsilon=0.4)
    first = system.private_queries.query(ann, budgeted, None, count)
    second = system.private_queries.query(ann, budgeted, None, DpQuery(kind="mean", field="age", epsilon=0.4))
    assert second.spent.epsilon == pytest.approx(0.8) and first.value is not None
    with pytest.raises(BudgetExhausted, match="budget is epsilon 1"):
        system.private_queries.query(ann, budgeted, None, count)
    allowed = events(system, "allowed")
    assert [e.details["epsilon"] for e in allowed] == [0.4, 0.4]
    assert allowed[1].details["spent"]["epsilon"] == pytest.approx(0.8)
    [refused] = events(system, "denied")
    assert "budget exhausted" in refused.reason
    # The budget is per consumer: ben has his own.
    assert system.private_queries.query(ben, budgeted, None, count).spent.epsilon == pytest.approx(0.4)
    ledger = system.private_queries.spent(operator_context(), budgeted)
    assert ledger["user:ann"].epsilon == pytest.approx(0.8) and ledger["user:ben"].queries == 1


def test_refusals_spend_nothing(system: Bastion, people: dict[str, Context], budgeted: str) -> None:
    ann = person("ann")
    with pytest.raises(InvalidInput, match="minimum and maximum"):  # zip declares no range
        system.private_queries.query(ann, budgeted, None, DpQuery(kind="sum", field="zip", epsilon=0.5))
    with pytest.raises(PermissionDenied):  # a viewer may read metadata, not query
        system.private_queries.query(people["vic"], budgeted, None, DpQuery(kind="count", epsilon=0.1))
    assert system.private_queries.spent(operator_context(), budgeted) == {}
    # The whole budget is still there: a query for all of it is answered (its noisy count may be below zero:
    # asserting a sign failed ~3% of runs).
    answer = system.private_queries.query(ann, budgeted, None, DpQuery(kind="count", epsilon=1.0))
    assert answer.spent.epsilon == pytest.approx(1.0)


def test_a_dataset_without_a_budget_answers_nothing(
    system: Bastion, people: dict[str, Context], customers: str
) -> None:
    ingest(system, people["dana"], customers, CSV.encode())
    with pytest.raises(PermissionDenied, match="no privacy budget"):
        system.private_queries.query(people["dana"], customers, None, DpQuery(kind="count", epsilon=0.1))
    assert "no privacy budget declared" in events(system, "denied")[0].reason


SURVEY = {
    "fields": [
        {"name": "age", "type": "integer", "minimum": 0, "maximum": 100},
        {"name": "plan", "type": "string", "allowed": ["free", "pro", "team"]},
        {"name": "active", "type": "boolean"},
        {"name": "email", "type": "string", "categories": ["PII"]},
    ],
    "privacy_budget": {"epsilon": 6.0},
}


def survey_csv(rows: int) -> bytes:
    plans = ["free", "free", "pro", "team"]
    lines = ["age,plan,active,email"]
    lines += [
        f"{20 + (i * 7) % 60},{plans[i % 4]},{str(i % 3 == 0).lower()},u{i}@example.com" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_synthetic_data_keeps_the_marginals_costs_its_epsilon_and_leaves_identifiers_out(
    system: Bastion, people: dict[str, Context]
) -> None:
    dana = people["dana"]
    system.datasets.create(dana, "survey", SURVEY, purposes=["analytics"], region="eu-west-1")
    ingest(system, dana, "survey", survey_csv(2000))
    made, report, spent = system.private_queries.synthesize(
        dana, "survey", None, 4.0, 1500, with_utility=True
    )
    assert spent.epsilon == pytest.approx(4.0) and len(made.rows) == 1500
    assert made.fields == ["age", "plan", "active"] and made.omitted == [
        "email"
    ]  # no domain: not synthesised
    assert all(set(row) == {"age", "plan", "active"} for row in made.rows)
    assert all(0 <= row["age"] <= 100 and row["plan"] in ("free", "pro", "team") for row in made.rows)
    assert report is not None
    assert all(distance < 0.08 for distance in report["total_variation_distance"].values())
    ann = person("ann")
    ops = operator_context()
    system.identity.create_principal(ops, "user:ann", attributes=CLEARANCE)
    system.identity.assign_role(ops, "user:ann", "analyst")
    with pytest.raises(PermissionDenied):  # the utility report reads the original: stewards only
        system.private_queries.synthesize(ann, "survey", None, 1.0, 10, with_utility=True)
    made, report, spent = system.private_queries.synthesize(ann, "survey", None, 1.0, 10)
    assert report is None and spent.epsilon == pytest.approx(1.0)
    with pytest.raises(BudgetExhausted):
        system.private_queries.synthesize(dana, "survey", None, 2.5, 10)  # 4 + 2.5 > 6

"""Differentially private aggregates over a dataset version: count, sum, mean, histogram and quantile, with
the Laplace (pure epsilon) or Gaussian ((epsilon, delta)) mechanism of OpenDP, over the bounds and categories
the schema declares per field — never bounds read off the data, which would leak them.

Neighbouring datasets differ by one row added or removed. Sensitivities: count 1; sum max(|min|, |max|) of
the field's declared range (values are clamped into it); histogram 1 in L1 (and L2) over the declared
categories; mean spends half of epsilon on a noisy sum and half on a noisy count; quantiles use OpenDP's
quantile scores and noisy max. Every mechanism is checked against OpenDP's own privacy map before it runs: the
release costs at most what it is charged. Noise comes from OpenDP's cryptographically secure sampler, with
floating-point-safe Laplace and Gaussian samplers (no Mironov-style attacks on textbook floats).

The accountant composes a consumer's spends with the better of basic composition and the heterogeneous
advanced composition of Kairouz, Oh and Viswanath (theorem 3.5, with the Dwork-Rothblum-Vadhan form), with
half of the dataset's delta reserved as the slack of advanced composition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

# OpenDP's modules themselves, not ``opendp.prelude``: the prelude also loads its scikit-learn and pandas
# extras, ~1.7 s that every ``bastion`` command paid at start (measured with ``-X importtime``).
from opendp import combinators, measurements, transformations
from opendp.domains import atom_domain, vector_domain
from opendp.measures import max_divergence
from opendp.metrics import absolute_distance, l1_distance, l2_distance, symmetric_distance
from opendp.mod import enable_features
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.core.errors import InvalidInput
from bastion.data.schema import DatasetSchema, FieldSpec, FieldType, PrivacyBudget

enable_features("contrib")  # OpenDP's mechanisms that are not yet formally vetted; these are standard
QUANTILE_CANDIDATES = 128
_TOLERANCE = 1e-9


class DpQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["count", "sum", "mean", "histogram", "quantile"]
    field: str | None = Field(default=None, max_length=64)
    epsilon: float = Field(gt=0, le=10)
    mechanism: Literal["laplace", "gaussian"] = "laplace"
    delta: float = Field(default=0.0, ge=0, lt=0.01)  # the Gaussian mechanism's
    q: float | None = Field(default=None, gt=0, lt=1)  # the quantile

    @model_validator(mode="after")
    def _consistent(self) -> DpQuery:
        if self.kind != "count" and self.field is None:
            raise ValueError(f"a {self.kind} needs a field")
        if self.mechanism == "gaussian" and self.delta <= 0:
            raise ValueError("the Gaussian mechanism needs a delta > 0")
        if self.mechanism == "laplace" and self.delta != 0:
            raise ValueError("the Laplace mechanism has delta 0")
        if self.kind == "quantile" and (self.q is None or self.mechanism != "laplace"):
            raise ValueError("a quantile needs q in (0, 1), with the (pure) exponential-style mechanism")
        return self

    def describe(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True, slots=True)
class Release:
    value: Any  # a number, or {category: count} for a histogram
    epsilon: float
    delta: float
    mechanism: str
    scale: float  # the noise scale actually used (Laplace b, Gaussian sigma, or the noisy-max scale)


def release(rows: Sequence[dict[str, Any]], schema: DatasetSchema, query: DpQuery) -> Release:
    """The noisy answer to ``query`` over ``rows``. Raises ``InvalidInput`` when the schema does not declare
    what the query needs (bounds for sums, means and quantiles; categories for histograms)."""
    if query.kind == "count":
        return _noisy_int(len(rows), 1, query)
    spec = _field(schema, query.field)
    if query.kind == "histogram":
        if not spec.allowed:
            raise InvalidInput(f"Field {spec.name} declares no categories ('allowed'): no histogram.")
        counts = [sum(1 for row in rows if str(row.get(spec.name)) == c) for c in spec.allowed]
        noisy = release_counts(counts, query)
        return Release(dict(zip(spec.allowed, noisy.value, strict=True)), *_cost(noisy))
    low, high = _bounds(spec)
    values = [min(max(float(v), low), high) for v in (row.get(spec.name) for row in rows) if v is not None]
    if query.kind == "sum":
        return _noisy_float(math.fsum(values), max(abs(low), abs(high)), query)
    if query.kind == "mean":
        half = query.model_copy(update={"epsilon": query.epsilon / 2, "delta": query.delta / 2})
        total = _noisy_float(math.fsum(values), max(abs(low), abs(high)), half)
        count = _noisy_int(len(values), 1, half)
        mean = min(max(total.value / max(count.value, 1), low), high)
        return Release(mean, query.epsilon, query.delta, query.mechanism, total.scale)
    return _quantile(values, low, high, query)


def _field(schema: DatasetSchema, name: str | None) -> FieldSpec:
    try:
        return schema.field(name or "")
    except StopIteration:
        raise InvalidInput(f"The dataset has no field {name!r}.") from None


def _bounds(spec: FieldSpec) -> tuple[float, float]:
    if spec.type not in (FieldType.INTEGER, FieldType.NUMBER) or spec.minimum is None or spec.maximum is None:
        raise InvalidInput(
            f"Field {spec.name} must be numeric with a declared minimum and maximum for this query."
        )
    return float(spec.minimum), float(spec.maximum)


Space = Literal["int", "float", "counts"]  # a number of each kind, or a vector of counts


def _space(space: Space, mechanism: str) -> tuple[Any, Any]:
    """OpenDP's input domain and distance for a kind of value (L1 for Laplace, L2 for Gaussian vectors)."""
    if space == "int":
        return atom_domain(T=int), absolute_distance(T=int)
    if space == "float":
        return atom_domain(T=float, nan=False), absolute_distance(T=float)
    vector = vector_domain(atom_domain(T=int))
    return vector, (l1_distance(T=int) if mechanism == "laplace" else l2_distance(T=int))


def _noisy_int(value: int, sensitivity: int, query: DpQuery) -> Release:
    return _run("int", value, sensitivity, query)


def _noisy_float(value: float, sensitivity: float, query: DpQuery) -> Release:
    return _run("float", value, sensitivity, query)


def release_counts(counts: list[int], query: DpQuery) -> Release:
    """Noisy counts of a histogram (L1 sensitivity 1 for Laplace, L2 for Gaussian)."""
    return _run("counts", counts, 1, query)


def _run(space: Space, value: Any, sensitivity: float, query: DpQuery) -> Release:
    domain, metric = _space(space, query.mechanism)
    if query.mechanism == "laplace":
        scale = sensitivity / query.epsilon
        mechanism = measurements.make_laplace(domain, metric, scale=scale)
        spent = _privacy_map(mechanism, sensitivity)
        assert spent <= query.epsilon * (1 + _TOLERANCE), spent  # noqa: S101 - the library's map agrees
    else:
        scale = gaussian_scale(space, sensitivity, query.epsilon, query.delta)
        mechanism = measurements.make_gaussian(domain, metric, scale=scale)
        profile = _privacy_map(combinators.make_zCDP_to_approxDP(mechanism), sensitivity)
        spent = profile.epsilon(query.delta)
        assert spent <= query.epsilon * (1 + _TOLERANCE), spent  # noqa: S101
    return Release(mechanism(value), query.epsilon, query.delta, query.mechanism, scale)


def _privacy_map(measurement: Any, distance: float) -> Any:
    """OpenDP's privacy map: the loss ``measurement`` guarantees between inputs ``distance`` apart."""
    return measurement.map(distance)


@lru_cache(maxsize=1024)
def gaussian_scale(space: Space, sensitivity: float, epsilon: float, delta: float) -> float:
    """The smallest Gaussian sigma for which OpenDP's accounting (zero-concentrated DP converted to
    (epsilon, delta)) gives at most (``epsilon``, ``delta``) at ``sensitivity``: no noise wasted."""
    domain, metric = _space(space, "gaussian")

    def cost(scale: float) -> float:
        mechanism = measurements.make_gaussian(domain, metric, scale=scale)
        profile = _privacy_map(combinators.make_zCDP_to_approxDP(mechanism), sensitivity)
        return float(profile.epsilon(delta))

    return smallest_scale(cost, epsilon)


def smallest_scale(cost: Any, epsilon: float) -> float:
    """Bisection for the smallest noise scale whose privacy cost (a decreasing function, evaluated by the
    library's privacy map) is at most ``epsilon``. Searched here rather than by OpenDP's own search, whose
    callbacks from Rust into Python crash the process when run many times (OpenDP 0.16)."""
    high = 1.0
    while cost(high) > epsilon:
        high *= 2
    low = 0.0
    for _ in range(64):
        middle = (low + high) / 2
        if middle > 0 and cost(middle) <= epsilon:
            high = middle
        else:
            low = middle
    return high


def _quantile(values: list[float], low: float, high: float, query: DpQuery) -> Release:
    alpha = float(query.q or 0.5)
    candidates = _candidates(low, high)
    scale = _quantile_scale(low, high, alpha, query.epsilon)
    mechanism = _quantile_chain(candidates, alpha, scale)
    assert _privacy_map(mechanism, 1) <= query.epsilon * (1 + _TOLERANCE)  # noqa: S101
    return Release(candidates[mechanism(values)], query.epsilon, 0.0, "noisy-max", scale)


def _candidates(low: float, high: float) -> list[float]:
    step = (high - low) / (QUANTILE_CANDIDATES - 1)
    return [low + i * step for i in range(QUANTILE_CANDIDATES)]


def _quantile_chain(candidates: list[float], alpha: float, scale: float) -> Any:
    domain = vector_domain(atom_domain(T=float, nan=False))
    scores = transformations.make_quantile_score_candidates(domain, symmetric_distance(), candidates, alpha)
    noisy_min = measurements.make_noisy_max(
        scores.output_domain, scores.output_metric, max_divergence(), scale, negate=True
    )
    return scores >> noisy_min


@lru_cache(maxsize=1024)
def _quantile_scale(low: float, high: float, alpha: float, epsilon: float) -> float:
    candidates = _candidates(low, high)
    return smallest_scale(
        lambda scale: float(_privacy_map(_quantile_chain(candidates, alpha, scale), 1)), epsilon
    )


def _cost(noisy: Release) -> tuple[float, float, str, float]:
    return noisy.epsilon, noisy.delta, noisy.mechanism, noisy.scale


# -- the accountant ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spent:
    epsilon: float
    delta: float
    queries: int


def composed(spends: Sequence[tuple[float, float]], slack: float) -> Spent:
    """The total privacy loss of ``spends`` ((epsilon, delta) each): basic composition, or with ``slack`` > 0
    the better of it and advanced composition (Kairouz-Oh-Viswanath 3.5 / Dwork-Rothblum-Vadhan), whose delta
    then includes the slack."""
    if not spends:
        return Spent(0.0, 0.0, 0)
    basic = math.fsum(e for e, _ in spends)
    keep = math.prod(1 - d for _, d in spends)
    if slack <= 0:
        return Spent(basic, 1 - keep, len(spends))
    squares = math.fsum(e * e for e, _ in spends)
    expected = math.fsum(e * math.expm1(e) / (math.exp(e) + 1) for e, _ in spends)
    drv = expected + math.sqrt(2 * squares * math.log(1 / slack))
    kov = expected + math.sqrt(2 * squares * math.log(math.e + math.sqrt(squares) / slack))
    advanced = min(drv, kov)
    if advanced < basic:
        return Spent(advanced, 1 - (1 - slack) * keep, len(spends))
    return Spent(basic, 1 - keep, len(spends))


def within(budget: PrivacyBudget, spends: Sequence[tuple[float, float]]) -> tuple[bool, Spent]:
    """Whether ``spends`` (the new query's included) stay within ``budget``, and their composed total."""
    slack = budget.delta / 2
    total = composed(spends, slack)
    room = 1 + _TOLERANCE
    fits = total.epsilon <= budget.epsilon * room and total.delta <= budget.delta * room
    return fits, total

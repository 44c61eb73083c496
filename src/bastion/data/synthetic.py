"""Differentially private synthetic data from noisy marginals.

Every field with a declared domain — categories (``allowed``), booleans, or a numeric range (``minimum`` and
``maximum``, cut into equal-width bins) — gets a histogram released through the same mechanism as the DP
queries; rows are then sampled field by field from the noisy marginals (numbers uniformly within their bin).
Epsilon is split evenly over the fields and composes sequentially: the release costs exactly the epsilon
asked for. Fields without a declared domain (free text, identifiers, dates) are left out — their values
cannot be synthesised without looking at them. Sampling from the marginals is post-processing: it costs
nothing more. Independent marginals keep each field's distribution, not the relations between fields; the
utility report says how well each survived (total variation distance per field) and what was lost
(correlations between numeric fields, original against synthetic).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.core.errors import InvalidInput
from bastion.data.privacy import DpQuery, Release, release_counts
from bastion.data.schema import DatasetSchema, FieldSpec, FieldType

BINS = 20
MAX_ROWS = 1_000_000


@dataclass(frozen=True, slots=True)
class Marginal:
    field: str
    kind: str  # categories | numeric
    categories: list[Any]  # the categories, or the bins' lower edges
    width: float  # numeric: the bin width
    noisy: list[int]


@dataclass(frozen=True, slots=True)
class Synthetic:
    rows: list[dict[str, Any]]
    epsilon: float
    fields: list[str]
    omitted: list[str]
    marginals: list[Marginal]


def domains(schema: DatasetSchema) -> tuple[list[FieldSpec], list[str]]:
    """The fields that can be synthesised (a declared domain), and those left out."""
    usable, omitted = [], []
    for spec in schema.fields:
        numeric = spec.type in (FieldType.INTEGER, FieldType.NUMBER) and None not in (
            spec.minimum,
            spec.maximum,
        )
        if spec.allowed or spec.type == FieldType.BOOLEAN or numeric:
            usable.append(spec)
        else:
            omitted.append(spec.name)
    return usable, omitted


def synthesize(
    rows: Sequence[dict[str, Any]], schema: DatasetSchema, epsilon: float, count: int
) -> Synthetic:
    if not 1 <= count <= MAX_ROWS:
        raise InvalidInput(f"Ask for 1-{MAX_ROWS} synthetic rows.")
    usable, omitted = domains(schema)
    if not usable:
        raise InvalidInput("No field declares a domain (categories, or a numeric minimum and maximum).")
    share = DpQuery(kind="histogram", field=usable[0].name, epsilon=epsilon / len(usable))
    marginals = [_marginal(rows, spec, share) for spec in usable]
    sampler = random.SystemRandom()
    synthetic = [
        {m.field: _draw(m, spec, sampler) for m, spec in zip(marginals, usable, strict=True)}
        for _ in range(count)
    ]
    return Synthetic(synthetic, epsilon, [s.name for s in usable], omitted, marginals)


def _marginal(rows: Sequence[dict[str, Any]], spec: FieldSpec, share: DpQuery) -> Marginal:
    if spec.allowed or spec.type == FieldType.BOOLEAN:
        categories: list[Any] = list(spec.allowed) if spec.allowed else [True, False]
        counts = [sum(1 for row in rows if row.get(spec.name) == c) for c in categories]
        noisy: Release = release_counts(counts, share)
        return Marginal(spec.name, "categories", categories, 0.0, list(noisy.value))
    low, high = float(spec.minimum or 0), float(spec.maximum or 0)
    width = (high - low) / BINS or 1.0
    counts = [0] * BINS
    for row in rows:
        value = row.get(spec.name)
        if value is not None:
            counts[min(BINS - 1, max(0, int((float(value) - low) / width)))] += 1
    noisy = release_counts(counts, share)
    return Marginal(spec.name, "numeric", [low + i * width for i in range(BINS)], width, list(noisy.value))


def _draw(marginal: Marginal, spec: FieldSpec, sampler: random.SystemRandom) -> Any:
    weights = [max(0, c) for c in marginal.noisy]
    if sum(weights) == 0:
        weights = [1] * len(weights)  # all noise: uniform over the domain
    choice = sampler.choices(range(len(weights)), weights=weights)[0]
    if marginal.kind == "categories":
        return marginal.categories[choice]
    value = marginal.categories[choice] + sampler.random() * marginal.width
    value = min(value, float(spec.maximum or value))
    return round(value) if spec.type == FieldType.INTEGER else value


def utility(
    original: Sequence[dict[str, Any]], synthetic: Synthetic, schema: DatasetSchema
) -> dict[str, Any]:
    """How the synthetic data compares with the original (this report is computed on the original data and
    is not differentially private: it is for the data's stewards)."""
    specs = {s.name: s for s in schema.fields}
    per_field = {}
    for marginal in synthetic.marginals:
        spec = specs[marginal.field]
        real, fake = _shares(original, marginal, spec), _shares(synthetic.rows, marginal, spec)
        per_field[marginal.field] = round(0.5 * sum(abs(a - b) for a, b in zip(real, fake, strict=True)), 4)
    numeric = [m.field for m in synthetic.marginals if m.kind == "numeric"]
    correlations = {}
    for i, a in enumerate(numeric):
        for b in numeric[i + 1 :]:
            correlations[f"{a}~{b}"] = {
                "original": _correlation(original, a, b),
                "synthetic": _correlation(synthetic.rows, a, b),
            }
    return {
        "total_variation_distance": per_field,
        "correlations": correlations,
        "rows": {"original": len(original), "synthetic": len(synthetic.rows)},
    }


def _shares(rows: Sequence[dict[str, Any]], marginal: Marginal, spec: FieldSpec) -> list[float]:
    counts = [0] * len(marginal.categories)
    for row in rows:
        value = row.get(marginal.field)
        if value is None:
            continue
        if marginal.kind == "categories":
            if value in marginal.categories:
                counts[marginal.categories.index(value)] += 1
        else:
            low = marginal.categories[0]
            counts[min(len(counts) - 1, max(0, int((float(value) - low) / marginal.width)))] += 1
    total = sum(counts) or 1
    return [c / total for c in counts]


def _correlation(rows: Sequence[dict[str, Any]], a: str, b: str) -> float | None:
    pairs = [(float(r[a]), float(r[b])) for r in rows if r.get(a) is not None and r.get(b) is not None]
    if len(pairs) < 3:
        return None
    xs, ys = zip(*pairs, strict=True)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    correlation: float = round(sum((x - mx) * (y - my) for x, y in pairs) / (sx * sy), 4)
    return correlation

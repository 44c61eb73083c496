"""k-anonymity over declared quasi-identifiers: every combination of their values shared by at least k rows.

Datafly-style: all quasi-identifiers are generalised one level at a time (``transforms.generalise``) until the
rows in groups smaller than k are few enough to suppress (at most ``max_suppression`` of them); those are
suppressed. The report gives the level reached, the k achieved and the suppression rate.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bastion.data.schema import KAnonymity
from bastion.data.transforms import Row, generalise

MAX_LEVEL = 6


def anonymise(rows: list[Row], spec: KAnonymity) -> tuple[list[Row], dict[str, Any]]:
    qis = spec.quasi_identifiers
    for level in range(MAX_LEVEL + 1):
        coarse = [{**row, **{q: generalise(row.get(q), level) for q in qis}} for row in rows]
        keys = [tuple(str(row.get(q)) for q in qis) for row in coarse]
        sizes = Counter(keys)
        small = sum(1 for key in keys if sizes[key] < spec.k)
        if small <= spec.max_suppression * len(rows) or level == MAX_LEVEL:
            kept = [row for row, key in zip(coarse, keys, strict=True) if sizes[key] >= spec.k]
            achieved = min((sizes[key] for key in keys if sizes[key] >= spec.k), default=0)
            return kept, {
                "quasi_identifiers": qis,
                "k_required": spec.k,
                "k_achieved": achieved,
                "generalisation_level": level,
                "suppressed": len(rows) - len(kept),
                "suppression_rate": round((len(rows) - len(kept)) / len(rows), 4) if rows else 0.0,
            }
    raise AssertionError("unreachable")  # pragma: no cover - the last level always returns

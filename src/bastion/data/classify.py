"""Column classification suggestions from sampled values: what the PII engine finds in each column, the data
categories and classification that implies, and where the schema's declaration falls short. A data steward
confirms (or not) by changing the schema; nothing is changed automatically."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bastion.data.pii import PiiEngine
from bastion.data.schema import CLASSIFICATIONS, DatasetSchema
from bastion.data.transforms import Row

SAMPLE = 200
SHARE = 0.3  # a column "holds" an entity type when at least this share of its sampled values contain it
ENTITY_CATEGORY = {
    "EMAIL_ADDRESS": "PII", "PHONE_NUMBER": "PII", "US_SSN": "PII", "US_PASSPORT": "PII",
    "US_DRIVER_LICENSE": "PII", "IP_ADDRESS": "PII", "MAC_ADDRESS": "PII", "IBAN_CODE": "PII",
    "CRYPTO": "PII", "PERSON": "PII", "LOCATION": "PII", "CREDIT_CARD": "PCI", "CREDENTIAL": "credentials",
}  # fmt: skip
CATEGORY_CLASSIFICATION = {
    "PII": "confidential",
    "PHI": "restricted",
    "PCI": "restricted",
    "credentials": "restricted",
}


def suggest(rows: list[Row], schema: DatasetSchema, engine: PiiEngine) -> list[dict[str, Any]]:
    suggestions = []
    for spec in schema.fields:
        values = [str(row[spec.name]) for row in rows[: SAMPLE * 5] if row.get(spec.name) not in (None, "")][
            :SAMPLE
        ]
        if not values:
            continue
        counts: Counter[str] = Counter()
        for found in engine.analyze_batch(values):
            counts.update({r.entity_type for r in found})
        detected = {kind: round(n / len(values), 3) for kind, n in counts.items() if n / len(values) >= SHARE}
        categories = sorted({ENTITY_CATEGORY[k] for k in detected if k in ENTITY_CATEGORY})
        if not categories:
            continue
        suggested = max((CATEGORY_CLASSIFICATION[c] for c in categories), key=CLASSIFICATIONS.index)
        declared = sorted(c.value for c in spec.categories)
        suggestions.append(
            {
                "field": spec.name,
                "detected": detected,
                "sampled": len(values),
                "suggested_categories": categories,
                "suggested_classification": suggested,
                "declared_categories": declared,
                "declared_classification": spec.classification,
                "understated": CLASSIFICATIONS.index(spec.classification) < CLASSIFICATIONS.index(suggested)
                or not set(categories) <= set(declared),
            }
        )
    return suggestions

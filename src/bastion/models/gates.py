"""Approval gates: what must hold before a version may be approved for production.

The scan and the signature are always checked (a version that fails either cannot even be loaded). A gate
policy — per model, or ``*`` for every model without its own — adds the rest: complete provenance, holdout
metrics within thresholds, and a number of approvals by reviewers who are not the version's author.
Third-party versions also need a "vetted by" sign-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min, max or both")
        return self

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class GatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approvals: int = Field(default=1, ge=1, le=10)  # at least one human review, always
    require_provenance: bool = True
    metrics: dict[str, Threshold] = Field(default_factory=dict, max_length=50)


DEFAULT_GATE = GatePolicy()


@dataclass(frozen=True, slots=True)
class GateFacts:
    """What is known of a version when its gate is evaluated."""

    scan: tuple[bool, str]
    signature: tuple[bool, str]
    provenance_missing: list[str] | None  # None: no provenance recorded at all
    metrics: dict[str, float] | None  # the latest evaluation's, if any
    approvers: list[str] = field(default_factory=list)
    third_party: bool = False
    vetted_by: str | None = None


def evaluate(policy: GatePolicy, facts: GateFacts) -> dict[str, Any]:
    checks: list[dict[str, Any]] = [
        {"name": "scan", "passed": facts.scan[0], "detail": facts.scan[1]},
        {"name": "signature", "passed": facts.signature[0], "detail": facts.signature[1]},
    ]
    if policy.require_provenance:
        missing = facts.provenance_missing
        detail = "none recorded" if missing is None else (f"missing {', '.join(missing)}" if missing else "")
        checks.append({"name": "provenance", "passed": missing == [], "detail": detail or "complete"})
    for metric, threshold in sorted(policy.metrics.items()):
        value = (facts.metrics or {}).get(metric)
        bounds = threshold.model_dump(exclude_none=True)
        checks.append(
            {
                "name": f"metric:{metric}",
                "passed": value is not None and threshold.holds(value),
                "detail": f"{value if value is not None else 'not evaluated'} (needs {bounds})",
            }
        )
    if facts.third_party:
        checks.append(
            {
                "name": "vetted",
                "passed": facts.vetted_by is not None,
                "detail": f"by {facts.vetted_by}" if facts.vetted_by else "a third-party model needs vetting",
            }
        )
    count = len(facts.approvers)
    checks.append(
        {
            "name": "approvals",
            "passed": count >= policy.approvals,
            "detail": f"{count} of {policy.approvals}: {', '.join(sorted(facts.approvers)) or 'none'}",
        }
    )
    return {
        "passed": all(check["passed"] for check in checks),
        "checks": checks,
        "policy": policy.model_dump(mode="json", exclude_none=True),
    }

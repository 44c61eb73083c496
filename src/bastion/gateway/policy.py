"""How a model is served: limits, batch size, output protection, failure mode, logging — a serving policy
per model (or ``*``), changed only through an audited action."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OutputPolicy(BaseModel):
    """Against model extraction: round probabilities, return only the top k, or only the label."""

    model_config = ConfigDict(extra="forbid")
    round: int | None = Field(default=4, ge=0, le=10)
    top_k: int | None = Field(default=None, ge=1, le=100)
    label_only: bool = False
    blocked_labels: list[str] = Field(default_factory=list, max_length=100)  # refused with a reason code


class ServingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal_rps: float = Field(default=20, gt=0, le=100_000)  # per principal on this model
    principal_burst: int = Field(default=40, ge=1, le=1_000_000)
    model_rps: float = Field(default=500, gt=0, le=1_000_000)  # all principals together
    model_burst: int = Field(default=1000, ge=1, le=10_000_000)
    daily_units: int = Field(default=1_000_000, ge=1)  # rows per principal per day
    max_batch: int = Field(default=64, ge=1, le=10_000)
    workers: int = Field(default=1, ge=1, le=16)
    # Requests waiting for a busy worker that it scores together, in one call of the model (what a call costs
    # is mostly fixed, so a busy model serves more); each request still gets the answer to its own rows. 1:
    # one request per call — for a custom model whose rows are not scored independently. Scored together,
    # probabilities may differ from a lone call's in the last bits of floating point.
    coalesce: int = Field(default=8, ge=1, le=64)
    timeout_s: float = Field(default=5, gt=0, le=120)
    output: OutputPolicy = Field(default_factory=OutputPolicy)
    # A custom model: "package.module:factory" of vetted code the operator installed (see gateway.flavors);
    # the version's artifact is handed to it. None: the flavor follows the artifact's format.
    entrypoint: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    # If the shared limiter is unreachable: refuse (default), or serve and audit each request (low risk only).
    fail_open: bool = False
    # The prediction's audit event: "buffered" queues it before the answer and commits it with the next group
    # commit (milliseconds later; flushed on shutdown; appends that are failing make requests wait and fail
    # closed); "durable" waits for the commit before answering. High-risk models are always durable.
    audit: Literal["buffered", "durable"] = "buffered"
    log_inputs: bool = False  # raw inputs in the audit event (default: their SHA-256 only)
    high_risk: bool = False  # keep a decision trace: inputs, version, outputs, per-feature contributions


DEFAULT_POLICY = ServingPolicy()

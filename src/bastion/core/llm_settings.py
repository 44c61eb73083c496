"""Settings of the LLM proxy's upstreams: where each is, which model names it serves, and which secret (in
the secrets store, under ``bastion/upstream/``) holds its credential — never the credential itself."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class LlmUpstreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    base_url: str = Field(pattern=r"^https?://", description="e.g. https://api.openai.com (without /v1)")
    secret: str = Field(
        pattern=r"^bastion/upstream/[a-z0-9._/-]{1,100}$", description="The secret holding the API key"
    )
    models: list[str] = Field(min_length=1, description="Model names clients may ask this upstream for")
    ca_file: Path | None = None
    timeout_s: float = Field(default=60, gt=0, le=600)

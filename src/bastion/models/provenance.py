"""Provenance of a model version: the training datasets (by content hash), hyperparameters, code commit,
training environment (a CycloneDX SBOM of the Python environment) and metrics — an in-toto statement whose
subject is the artifact's digest, signed by the registry like the artifact itself.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import InvalidInput
from bastion.models.signing import STATEMENT_TYPE

PREDICATE_TYPE = "https://bastion.dev/model-provenance/v1"
_HEX64 = r"^[0-9a-f]{64}$"
MAX_PROVENANCE_BYTES = 4 * 1024 * 1024


class DatasetRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    version: str | None = Field(default=None, max_length=64)
    sha256: str = Field(pattern=_HEX64)


class CodeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: str | None = Field(default=None, max_length=512)
    commit: str = Field(pattern=r"^[0-9a-f]{7,64}$")


Scalar = str | int | float | bool | None


class Provenance(BaseModel):
    """What a training run declares about a version. Complete = datasets, code and environment present."""

    model_config = ConfigDict(extra="forbid")
    datasets: list[DatasetRef] = Field(default_factory=list, max_length=1000)
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict, max_length=1000)
    code: CodeRef | None = None
    metrics: dict[str, float] = Field(default_factory=dict, max_length=1000)
    environment: dict[str, Any] | None = None  # a CycloneDX SBOM (JSON)

    def missing(self) -> list[str]:
        gaps = []
        if not self.datasets:
            gaps.append("datasets")
        if self.code is None:
            gaps.append("code")
        if self.environment is None:
            gaps.append("environment")
        return gaps


def parse(document: Any) -> Provenance:
    if len(json.dumps(document)) > MAX_PROVENANCE_BYTES:
        raise InvalidInput("The provenance document is larger than 4 MiB.")
    try:
        provenance = Provenance.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in error.errors()[:10]
        )
        raise InvalidInput(f"The provenance document is invalid: {problems}") from None
    environment = provenance.environment
    if environment is not None and (
        environment.get("bomFormat") != "CycloneDX" or not isinstance(environment.get("components"), list)
    ):
        raise InvalidInput("The provenance environment must be a CycloneDX SBOM (JSON) with components.")
    return provenance


def statement(filename: str, sha256: str, provenance: Provenance, recorded_by: str) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": filename, "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {**provenance.model_dump(mode="json"), "recordedBy": recorded_by},
    }


def environment_sbom() -> dict[str, Any]:
    """A CycloneDX 1.6 SBOM of the Python environment this process runs in (every installed
    distribution, with its package URL). Imported lazily: only ``models push --sbom`` needs it."""
    from cyclonedx.model.bom import Bom  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415
    from cyclonedx.output.json import JsonV1Dot6  # noqa: PLC0415
    from packageurl import PackageURL  # noqa: PLC0415

    bom = Bom()
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        bom.components.add(
            Component(
                name=name,
                version=version,
                type=ComponentType.LIBRARY,
                purl=PackageURL(type="pypi", name=name.lower(), version=version),
                bom_ref=f"pkg:pypi/{name.lower()}@{version}",
            )
        )
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return document

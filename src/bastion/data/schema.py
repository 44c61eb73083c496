"""What a dataset declares about its data: for each field its type, classification and data categories (and
the purposes it serves), the dataset's quasi-identifiers, and the transforms applied on ingest or export.

Schemas are data (JSON), validated here once, stored with the dataset, and changed only by a data steward.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.core.errors import InvalidInput

_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_PURPOSE = r"^[a-z0-9][a-z0-9._:-]{0,63}$"
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


class Category(StrEnum):
    PII = "PII"
    PHI = "PHI"
    PCI = "PCI"
    CREDENTIALS = "credentials"


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    type: FieldType = FieldType.STRING
    classification: Literal["public", "internal", "confidential", "restricted"] = "internal"
    categories: list[Category] = Field(default_factory=list, max_length=4)
    required: bool = True
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)
    minimum: float | None = None
    maximum: float | None = None
    allowed: list[str] | None = Field(default=None, max_length=10_000)  # categorical values
    # The purposes this field is needed for; on export for another purpose it is dropped (minimisation).
    # Empty: needed for every purpose the dataset serves.
    purposes: list[str] = Field(default_factory=list, max_length=50)
    # This field identifies the data subject: data-subject requests (access, erasure, rectification) find the
    # subject's records through it (its plain value, its pseudonym token, or its field-encrypted value).
    subject: bool = False


class Transform(BaseModel):
    """One transform of one field. ``pseudonymise``: keyed HMAC token (consistent per key and field), kept
    re-identifiable through an audited lookup; ``encrypt``: field-level encryption through the key manager;
    ``mask``: keep the last ``keep`` characters; ``redact``: remove PII the engine finds in free text;
    ``generalise``: coarsen a quasi-identifier (numbers to bins of ``width``, dates to year, strings to a
    prefix of ``keep``) — the k-anonymity step chooses how far."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(pattern=_NAME)
    op: Literal["pseudonymise", "encrypt", "mask", "redact", "generalise", "drop"]
    on: Literal["ingest", "export"] = "ingest"
    keep: int | None = Field(default=None, ge=0, le=64)
    width: float | None = Field(default=None, gt=0)


class KAnonymity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quasi_identifiers: list[str] = Field(min_length=1, max_length=20)
    k: int = Field(default=5, ge=2, le=1000)
    max_suppression: float = Field(default=0.05, ge=0, le=0.5)  # share of rows that may be suppressed


class PrivacyBudget(BaseModel):
    """The differential-privacy budget each consumer (principal) has on this dataset, across all its
    versions; aggregate queries are refused once a consumer's composed spend would exceed it."""

    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(default=1e-6, ge=0, lt=0.01)


class DatasetSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[FieldSpec] = Field(min_length=1, max_length=500)
    transforms: list[Transform] = Field(default_factory=list, max_length=500)
    k_anonymity: KAnonymity | None = None  # applied on export
    allow_extra_fields: bool = False
    privacy_budget: PrivacyBudget | None = None  # None: no differentially private queries at all

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSchema:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        known = set(names)
        for transform in self.transforms:
            if transform.field not in known:
                raise ValueError(f"transform on unknown field {transform.field!r}")
        if self.k_anonymity:
            unknown = set(self.k_anonymity.quasi_identifiers) - known
            if unknown:
                raise ValueError(f"unknown quasi-identifiers: {sorted(unknown)}")
        for spec in self.fields:
            for purpose in spec.purposes:
                if not re.fullmatch(_PURPOSE, purpose):
                    raise ValueError(f"field {spec.name}: {purpose!r} is not a purpose name")
        return self

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    @property
    def classification(self) -> str:
        """The dataset's classification: its most sensitive field's."""
        return max((f.classification for f in self.fields), key=CLASSIFICATIONS.index)


def parse_schema(document: object) -> DatasetSchema:
    try:
        return DatasetSchema.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(schema)'}: {e['msg']}" for e in error.errors()[:10]
        )
        raise InvalidInput(f"The dataset schema is invalid: {problems}") from None

"""The input schema a version declares at registration: a JSON Schema (draft 2020-12) for one input row —
feature types, ranges, categories and count — which the gateway wraps into the request schema (batch size
from the serving policy). Declared before approval, so approvers review what the model will accept."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from bastion.core.errors import InvalidInput

MAX_SCHEMA_BYTES = 64 * 1024


class InvalidInputSchema(InvalidInput):
    code = "models.invalid_input_schema"
    title = "Invalid input schema"


def check_row_schema(document: Any) -> dict[str, Any]:
    """``document`` if it is a usable row schema; otherwise ``InvalidInputSchema`` saying why."""
    if not isinstance(document, dict):
        raise InvalidInputSchema("The input schema must be a JSON object (a JSON Schema for one input row).")
    if len(json.dumps(document)) > MAX_SCHEMA_BYTES:
        raise InvalidInputSchema(f"The input schema is larger than {MAX_SCHEMA_BYTES} bytes.")
    if document.get("type") != "array":
        raise InvalidInputSchema('A row is a list of features: the schema\'s "type" must be "array".')
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as error:
        raise InvalidInputSchema(f"The input schema is not valid JSON Schema: {error.message}") from None
    return document


def schema_digest(schema: dict[str, Any]) -> str:
    """What the audit event records of a declared schema (the schema itself is on the version)."""
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

"""Input checks before a model sees anything: body size, JSON nesting depth, and the version's input schema
(JSON Schema: the rows the version declared at registration, or derived from the model — feature count,
numeric features — and the batch size) — every failure a
problem document with the reason, never a model error."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from bastion.core.errors import BastionError, ExitCode, PayloadTooLarge


class InvalidPrediction(BastionError):
    code = "predict.invalid_input"
    status = 422
    exit_code = ExitCode.INVALID_INPUT
    title = "Invalid prediction input"


class UnsupportedMediaType(BastionError):
    code = "predict.unsupported_media_type"
    status = 415
    exit_code = ExitCode.INVALID_INPUT
    title = "Unsupported media type"


def input_schema(
    description: dict[str, Any], max_batch: int, declared: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Schema of a prediction request: rows as the version declared them at registration, or else
    derived from the model (``features`` numbers per row)."""
    row: dict[str, Any] = {"type": "array", "items": {"type": "number"}}
    if declared is not None:
        row = declared
    elif description.get("features"):
        row.update(minItems=description["features"], maxItems=description["features"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "inputs": {"type": "array", "minItems": 1, "maxItems": max_batch, "items": row},
            "return_probabilities": {"type": "boolean"},
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }


def parse_body(
    body: bytes, content_type: str | None, max_bytes: int, max_depth: int, content_encoding: str | None = None
) -> Any:
    """The request's JSON document. ``content_type`` and ``content_encoding`` are the headers' values, all of
    them joined by commas as HTTP reads repeated headers: two media types are not one, and a compressed body
    (which would have to be inflated — a decompression bomb's way in) is not accepted."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the inputs as application/json.")
    if (content_encoding or "identity").strip().lower() != "identity":
        raise UnsupportedMediaType("Send the body uncompressed: no Content-Encoding is accepted.")
    skeleton = _skeleton(body)  # one pass for both checks: the depth before parsing, the keys after
    depth = _depth(skeleton)
    if depth > max_depth:
        raise InvalidPrediction(f"The JSON is nested {depth} levels deep; at most {max_depth} are accepted.")
    try:
        # Strict RFC 8259: UTF-8 only, and NaN and Infinity are not numbers.
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidPrediction(f"The body is not valid JSON: {error}") from None
    if _collapsed(skeleton, document):
        raise InvalidPrediction("The JSON names the same key twice in one object; send each key once.")
    return document


# A JSON string (its escapes included), or an unterminated one to the end. The alternatives cannot both
# match a byte, so the pattern is linear on any input.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


def _skeleton(body: bytes) -> bytes:
    """The body with its strings dropped (in C): brackets, colons, commas, numbers and literals."""
    return _STRING.sub(b"", body)


def _depth(skeleton: bytes) -> int:
    """Nesting depth counted on the bytes, before parsing (a deep document is refused without building it):
    everything but brackets deleted from the skeleton in C, then the few brackets left walked."""
    depth = deepest = 0
    for byte in skeleton.translate(None, _NOT_BRACKETS):
        if byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def names_a_key_twice(body: bytes, document: Any) -> bool:
    """Whether an object in the (valid) body names a key twice — ``"a"`` and ``"\\u0061"`` are one key. The
    parser keeps the last silently, and a JSON reader in front of the gateway (a WAF, a proxy's policy) may
    keep the first: the document it approved would not be the one scored."""
    return _collapsed(_skeleton(body), document)


def _collapsed(skeleton: bytes, document: Any) -> bool:
    """Counted rather than re-parsed: outside strings a valid document has a colon for each key written,
    and its parsed objects have fewer keys when two collapsed into one."""
    written = skeleton.count(b":")
    if written < 2:  # one key cannot collide (the common body)
        return False
    if type(document) is dict and skeleton.count(b"{") == 1:  # one object (rows of numbers): no walk needed
        return written != len(document)
    return written != _keys(document)


def _keys(document: Any) -> int:
    count, containers = 0, [document] if type(document) in (dict, list) else []
    while containers:
        container = containers.pop()
        if type(container) is dict:
            count += len(container)
            children: Any = container.values()
        else:
            children = container
        containers.extend(child for child in children if type(child) in (dict, list))
    return count


def validate(
    document: Any, description: dict[str, Any], max_batch: int, declared: dict[str, Any] | None = None
) -> None:
    """Check ``document`` against the version's input schema. For a derived schema the common valid shape is
    confirmed by a direct walk (the schema's exact rules, without the validator's per-item cost); a declared
    schema, and anything else, goes through the JSON Schema validator, which names every problem."""
    if declared is None and _plainly_valid(document, description.get("features"), max_batch):
        return
    schema = input_schema(description, max_batch, declared)
    errors = sorted(
        _validator(json.dumps(schema, sort_keys=True)).iter_errors(document),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        problems = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}"[:300] for e in errors[:10]
        ]
        raise InvalidPrediction(
            "The inputs do not match the model's input schema.", problems=problems, schema=schema
        )


def _plainly_valid(document: Any, features: int | None, max_batch: int) -> bool:
    if not isinstance(document, dict) or set(document) - {"inputs", "return_probabilities"}:
        return False
    if "return_probabilities" in document and not isinstance(document["return_probabilities"], bool):
        return False
    rows = document.get("inputs")
    if not isinstance(rows, list) or not 1 <= len(rows) <= max_batch:
        return False
    for row in rows:
        if not isinstance(row, list) or (features and len(row) != features):
            return False
        for value in row:
            if type(value) not in (int, float):  # JSON Schema's "number": no booleans
                return False
    return True


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))

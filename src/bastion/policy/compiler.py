"""Turning policy text into a parsed, schema-validated Cedar policy set — once per version, reused by every
decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import cedarpy

from bastion.core.errors import InvalidInput
from bastion.policy.defaults import RESERVED_ID_PREFIXES, default_policies
from bastion.policy.schema import schema_text

MAX_POLICY_BYTES = 256 * 1024
MAX_POLICIES = 2000


@dataclass(frozen=True, slots=True)
class CompiledPolicies:
    """The shipped policies plus one custom version, parsed and validated against the schema."""

    version: int
    policies: cedarpy.PolicySet
    custom_ids: tuple[str, ...]


@cache
def schema() -> cedarpy.Schema:
    return cedarpy.Schema.from_str(schema_text())


def _custom_ids(text: str) -> tuple[str, ...]:
    try:
        document = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as error:
        raise InvalidInput(f"The policies do not parse: {error}") from None
    if document.get("templates"):
        raise InvalidInput("Policy templates are not supported; write static policies.")
    ids: list[str] = []
    for policy in document.get("staticPolicies", {}).values():
        policy_id = policy.get("annotations", {}).get("id")
        if not policy_id:
            raise InvalidInput(
                "Every policy needs an @id annotation, so each decision can name it.",
                remedy='Put @id("team-x:read-models") (any unique name) above each policy.',
            )
        if policy_id.startswith(RESERVED_ID_PREFIXES):
            raise InvalidInput(f"Policy id {policy_id!r} uses a reserved prefix ('role:' or 'default:').")
        if policy_id in ids:
            raise InvalidInput(f"Policy id {policy_id!r} is used twice.")
        ids.append(policy_id)
    if len(ids) > MAX_POLICIES:
        raise InvalidInput(f"At most {MAX_POLICIES} custom policies.")
    return tuple(ids)


def compile_policies(custom: str, version: int) -> CompiledPolicies:
    """Validate ``custom`` against the schema together with the shipped set; raise ``InvalidInput`` with every
    validation error otherwise. Nothing that fails here can become active."""
    if len(custom.encode()) > MAX_POLICY_BYTES:
        raise InvalidInput(f"A policy set is at most {MAX_POLICY_BYTES // 1024} KiB.")
    ids = _custom_ids(custom) if custom.strip() else ()
    combined = default_policies() + "\n" + custom
    result = cedarpy.validate_policies(combined, schema())
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        errors = "; ".join(f"[{names.get(e.policy_id, e.policy_id)}] {e.error}" for e in result.errors[:20])
        raise InvalidInput(f"The policies do not validate against Bastion's schema: {errors}")
    return CompiledPolicies(version=version, policies=cedarpy.PolicySet.from_str(combined), custom_ids=ids)

"""Configuration of mutual TLS and of external OIDC issuers (``[[bastion.oidc_issuers]]`` in bastion.toml)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ROLE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_MAPPING_KEY = re.compile(r"^(sha256:[0-9a-f]{64}|dns:[A-Za-z0-9.*-]{1,253}|uri:\S{1,1024})$")

# Asymmetric algorithms only: a shared-secret (HS*) algorithm would let anyone holding the issuer's public
# key sign tokens (algorithm confusion), and "none" is not an algorithm.
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class MtlsMode(StrEnum):
    OFF = "off"
    OPTIONAL = "optional"  # a client certificate is verified if presented, and authenticates the request
    REQUIRED = "required"  # no client certificate, no TLS handshake


def check_mtls_principals(value: dict[str, str]) -> dict[str, str]:
    """``{"sha256:<hex>" | "dns:<name>" | "uri:<uri>": "service:<name>"}``."""
    for key, principal in value.items():
        if not _MAPPING_KEY.fullmatch(key):
            raise ValueError(f"mtls_principals key {key!r} must be sha256:<64 hex>, dns:<name> or uri:<uri>")
        if not principal.startswith("service:"):
            raise ValueError(f"mtls_principals maps certificates to service principals, not {principal!r}")
    return value


def _default_algorithms() -> list[Algorithm]:
    return ["RS256"]


class OidcIssuerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="The exact iss claim, e.g. https://login.example.com/realms/ml")
    audience: str = Field(min_length=1, description="The aud claim Bastion requires")
    jwks_uri: str | None = Field(
        default=None, description="Default: jwks_uri from <issuer>/.well-known/openid-configuration"
    )
    algorithms: list[Algorithm] = Field(default_factory=_default_algorithms, min_length=1)
    principal_type: Literal["user", "service"] = "user"
    principal_claim: str = Field(default="sub", min_length=1)
    principal_prefix: str = Field(
        default="", pattern=r"^[a-z0-9._@-]{0,32}$", description="Prefixed to the claim, e.g. 'okta.'"
    )
    attribute_claims: dict[str, str] = Field(
        default_factory=dict, description="ABAC attribute name -> claim name, e.g. {department = 'dept'}"
    )
    groups_claim: str = "groups"
    group_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="IdP group -> Bastion roles, e.g. {'ml-admins' = ['operator']}"
    )
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the issuer's TLS")
    leeway_s: int = Field(default=30, ge=0, le=300)
    refresh_min_interval_s: float = Field(
        default=60.0, ge=0, le=86_400, description="At most one JWKS refresh per interval on unknown kid"
    )

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^\s/]+(/\S*)?$", value):
            raise ValueError("issuer and jwks_uri must be https:// URLs")
        return value

    @field_validator("group_roles")
    @classmethod
    def _roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for roles in value.values():
            for role in roles:
                if not _ROLE.fullmatch(role):
                    raise ValueError(f"{role!r} is not a role name")
        return value

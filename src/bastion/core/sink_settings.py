"""Configuration of one SIEM sink (``[[bastion.audit_sinks]]`` in bastion.toml), built by audit.export."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class SinkKind(StrEnum):
    SYSLOG = "syslog"  # RFC 5424 over TCP (RFC 6587 octet counting) or TLS (RFC 5425)
    CEF = "cef"  # ArcSight CEF carried in RFC 5424 syslog over TCP or TLS
    OCSF = "ocsf"  # OCSF 1.3 JSON lines, to a file or over TCP/TLS
    HEC = "hec"  # HTTP JSON, Splunk HTTP Event Collector compatible


class SinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: SinkKind
    address: str | None = Field(default=None, description="host:port for TCP/TLS sinks")
    path: Path | None = Field(
        default=None, description="file for an OCSF sink that writes JSON lines locally"
    )
    url: str | None = Field(default=None, description="collector URL for HEC, e.g. https://splunk:8088")
    tls: bool = False
    ca_file: Path | None = None
    token: SecretStr | None = Field(default=None, description="HEC token")
    hostname: str = "bastion"
    batch_size: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _destination(self) -> SinkSettings:
        if self.kind is SinkKind.HEC:
            if not self.url or self.token is None:
                raise ValueError("an hec sink needs url and token")
        elif self.kind is SinkKind.OCSF and self.path is not None:
            if self.address:
                raise ValueError("an ocsf sink takes either path or address, not both")
        elif not self.address or ":" not in self.address:
            raise ValueError(f"a {self.kind.value} sink needs address = 'host:port'")
        return self

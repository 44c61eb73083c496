"""Bastion's settings: environment ``BASTION_*`` > ``bastion.toml`` > defaults.

Explicit values (CLI flags) override all three. Unknown keys, in the file or as ``BASTION_*`` environment
variables, are refused with a message naming the key: a misspelt security setting silently falling back to
its default is exactly the kind of seam this product exists to close.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

from bastion.core.errors import ConfigError
from bastion.core.identity_settings import MtlsMode, OidcIssuerSettings, check_mtls_principals
from bastion.core.llm_settings import LlmUpstreamSettings
from bastion.core.logs import LogFormat
from bastion.core.sink_settings import SinkSettings

ENV_PREFIX = "BASTION_"
CONFIG_ENV = "BASTION_CONFIG"
DEFAULT_CONFIG_FILE = Path("bastion.toml")
# BASTION_* variables that are not settings: they choose the file, or are CLI flags' fallbacks.
NON_SETTING_ENV = frozenset({CONFIG_ENV, "BASTION_JSON"})
# The test suite's own service addresses; never read by Bastion itself.
TEST_ENV_PREFIX = "BASTION_TEST_"

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _strict_bool(value: Any) -> Any:
    """Accept true/false/1/0 only: 'yes', 'on' or a typo must not quietly mean something."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError("must be true or false (or 1 or 0)")


StrictFlag = Annotated[bool, BeforeValidator(_strict_bool)]


class KeyBackendKind(StrEnum):
    LOCAL = "local"
    PKCS11 = "pkcs11"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_toml_values: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "bastion_toml", default=None
)


class Settings(BaseSettings):
    """Every tunable of a Bastion deployment. See the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
        case_sensitive=False,
    )

    state_dir: Path = Field(
        default=Path(".bastion"),
        description="Directory for the embedded database, TLS material and local keys (mode 0700).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; default is SQLite in the state directory. May hold a password.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the server listens on.")
    port: int = Field(default=8443, ge=1, le=65535, description="Port the server listens on.")
    unsafe_http: StrictFlag = Field(
        default=False, description="Serve plain HTTP instead of HTTPS. Loopback only; logs a warning."
    )
    public_url: str | None = Field(
        default=None, description="URL clients reach Bastion at: the token issuer. Default https://HOST:PORT."
    )
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.JSON
    audit_witness_path: Path | None = Field(
        default=None,
        description="Append-only file that witnesses checkpoints; default <state_dir>/audit/witness.jsonl. "
        "Put it where database administrators cannot rewrite it.",
    )
    audit_checkpoint_interval_s: float = Field(
        default=60.0, gt=0, le=86_400, description="How often the server signs and witnesses a checkpoint."
    )
    audit_sinks: list[SinkSettings] = Field(
        default_factory=list,
        description="SIEM sinks ([[bastion.audit_sinks]] tables, or JSON in the env var).",
    )
    audit_export_interval_s: float = Field(default=5.0, gt=0, le=3600, description="How often sinks are fed.")
    audit_appender: StrictFlag = Field(
        default=True,
        description="The server appends buffered audit records (predictions) from a process of its own, so "
        "their group commit takes no turn from the requests being served.",
    )
    keys_backend: KeyBackendKind = Field(
        default=KeyBackendKind.LOCAL, description="Where key material lives."
    )
    master_key: SecretStr | None = Field(
        default=None, description="Base64 of 32 bytes sealing the local keyring."
    )
    master_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase (scrypt) sealing the local keyring, instead of a master key."
    )
    master_key_file: Path | None = Field(
        default=None, description="0600 file holding the master key; default <state_dir>/master.key."
    )
    pkcs11_module: Path = Field(
        default=Path("/usr/lib/softhsm/libsofthsm2.so"), description="PKCS#11 library."
    )
    pkcs11_token: str = Field(default="bastion", description="Label of the PKCS#11 token.")
    pkcs11_pin: SecretStr | None = Field(default=None, description="User PIN of the PKCS#11 token.")
    mtls: MtlsMode = Field(
        default=MtlsMode.OFF, description="Client certificates: off, optional or required (at the handshake)."
    )
    mtls_client_ca: Path | None = Field(
        default=None, description="CA that client certificates must chain to; default: the local CA."
    )
    mtls_principals: Annotated[dict[str, str], AfterValidator(check_mtls_principals)] = Field(
        default_factory=dict,
        description="Certificates to service principals by sha256 fingerprint, DNS or URI SAN; certificates "
        "from the local CA name their principal themselves.",
    )
    oidc_issuers: list[OidcIssuerSettings] = Field(
        default_factory=list, description="External OIDC issuers whose tokens are accepted."
    )
    elevation_max_minutes: int = Field(
        default=240, ge=1, le=7 * 24 * 60, description="Longest just-in-time elevation an approver can grant."
    )
    model_max_bytes: int = Field(
        default=16 * 1024**3,
        ge=1,
        description="Largest model artifact accepted by the registry (bytes); larger uploads are refused.",
    )
    data_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=1,
        description="Largest data upload accepted (bytes); larger uploads are refused.",
    )
    data_uploads_per_minute: int = Field(
        default=30, ge=1, le=100_000, description="Data uploads each principal may start per minute."
    )
    demo: bool = Field(
        default=True,
        description="On a fresh state `bastion up` puts a demo classifier in production and prints a curl.",
    )
    llm_upstreams: list[LlmUpstreamSettings] = Field(
        default_factory=list, description="OpenAI-compatible upstreams the LLM proxy forwards to."
    )
    llm_principal_rps: float = Field(default=5, gt=0, description="LLM requests per second per principal.")
    llm_daily_tokens: int = Field(default=1_000_000, ge=1, description="LLM tokens per principal per day.")
    llm_blocked_output: list[str] = Field(
        default_factory=list, description="Text that must never reach a client (case-insensitive literals)."
    )
    gateway_limiter: Literal["local", "redis"] = Field(
        default="local",
        description="Where rate limits live: this process (the default) or Redis (exact across replicas).",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for shared rate limits.")
    redis_prefix: str = Field(
        default="bastion:rl:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="Key prefix of the rate limits in Redis (separates deployments that share one Redis).",
    )
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024**2)
    gateway_max_json_depth: int = Field(default=32, ge=3, le=1000)
    gateway_worker_memory_mb: int = Field(default=2048, ge=64, le=1024 * 1024)
    data_region: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="The region this deployment stores data in. Set, it enforces residency on ingest: a "
        "dataset of another region is stored only under an explicit data.transfer rule (exports to a "
        "declared destination region are checked either way).",
    )
    data_retention_days: dict[Literal["public", "internal", "confidential", "restricted"], int] = Field(
        default_factory=dict,
        description="Default retention (days) by classification, for datasets that declare none.",
    )
    data_retention_interval_s: float = Field(
        default=3600, ge=60, le=7 * 86400, description="How often the server runs retention."
    )
    otel_exporter: Literal["none", "otlp", "console"] = Field(
        default="none", description="Where OpenTelemetry traces of the gateway go (none: not recorded)."
    )
    otel_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces", description="The OTLP/HTTP traces endpoint of a collector."
    )
    otel_service_name: str = Field(default="bastion", max_length=100)
    gateway_model_code: list[Path] = Field(
        default_factory=list,
        description="Directories of vetted custom-model code (the 'python' serving flavor's entry points), "
        "searched after the installed packages by model workers.",
    )
    db_busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    db_pool_size: int = Field(default=5, ge=1, le=200)
    cache_keep_warm_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long after its last use an API key, principal, policy or served model is kept fresh "
        "in this replica's caches (reloaded in the background); 0: only while requests keep using it.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, init_kwargs=dict(_toml_values.get() or {}))
        return (init_settings, env_settings, toml)

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.state_dir / 'bastion.db').resolve()}"

    @property
    def effective_witness_path(self) -> Path:
        return self.audit_witness_path or self.state_dir / "audit" / "witness.jsonl"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.state_dir / "master.key"

    @property
    def effective_public_url(self) -> str:
        scheme = "http" if self.unsafe_http else "https"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def models_dir(self) -> Path:
        """Encrypted model artifacts (and archive copies of retired ones)."""
        return self.state_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        """Encrypted dataset versions."""
        return self.state_dir / "datasets"

    @property
    def keyring_path(self) -> Path:
        return self.state_dir / "keyring.bks"

    @property
    def host_is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_toml(path: Path) -> dict[str, Any]:
    """The whole TOML document, or a ``ConfigError`` naming the file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {path} is not valid TOML: {exc}.") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    # Allow both a flat file and one whose settings sit under [bastion].
    section = data.get("bastion", data)
    if not isinstance(section, dict):
        raise ConfigError(f"Configuration file {path}: [bastion] must be a table.")
    return section


def _unknown_env(environ: Mapping[str, str]) -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX)
        and key.upper() not in known
        and key.upper() not in NON_SETTING_ENV
        and not key.upper().startswith(TEST_ENV_PREFIX)
    )


def _describe(errors: ValidationError, source_file: Path | None) -> str:
    lines = []
    for error in errors.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        where = f" (in {source_file} or {ENV_PREFIX}{key.upper()})" if source_file else ""
        lines.append(f"setting '{key}'{where}: {message}")
    return "; ".join(lines)


def load_settings(
    config_file: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings from overrides > environment > TOML file > defaults, or raise ``ConfigError``.

    ``config_file`` (or ``BASTION_CONFIG``) names the TOML file and must then exist; otherwise
    ``bastion.toml`` in the working directory is read when present.
    """
    env = os.environ
    unknown = _unknown_env(env)
    if unknown:
        raise ConfigError(f"Unknown environment variable(s): {', '.join(unknown)}.")
    explicit = config_file or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    path = explicit or DEFAULT_CONFIG_FILE
    if explicit is not None and not explicit.is_file():
        raise ConfigError(f"Configuration file {explicit} does not exist.")
    values = _read_toml(path) if path.is_file() else {}
    token = _toml_values.set(values)
    try:
        clean = {key: value for key, value in (overrides or {}).items() if value is not None}
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(f"Invalid configuration: {_describe(exc, path if values else None)}.") from exc
    finally:
        _toml_values.reset(token)


def display_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with every secret masked."""
    shown: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown[name] = "**********"
        elif name == "audit_sinks":
            shown[name] = [sink.model_dump(mode="json") for sink in value]  # tokens dump as "**********"
        elif isinstance(value, Path):
            shown[name] = str(value)
        else:
            shown[name] = value.value if isinstance(value, StrEnum) else value
    shown["effective_database_url"] = mask_url(settings.effective_database_url)
    return shown


def mask_url(url: str) -> str:
    """A database URL fit to show: any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing rather than risk a leak
        return "(unparsable URL hidden)"

"""Settings resolve environment > TOML file > defaults, and refuse unknown keys and bad values by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.core.errors import ConfigError
from bastion.core.settings import display_settings, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_deployment() -> None:
    settings = load_settings()
    assert settings.state_dir == Path(".bastion")
    assert settings.host == "127.0.0.1"
    assert settings.port == 8443
    assert settings.unsafe_http is False
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith(".bastion/bastion.db")


def test_environment_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "bastion.toml", 'port = 9000\nhost = "localhost"\n')
    assert load_settings().port == 9000
    monkeypatch.setenv("BASTION_PORT", "9100")
    settings = load_settings()
    assert (settings.port, settings.host) == (9100, "localhost")
    assert load_settings(overrides={"port": 9200}).port == 9200


def test_file_may_use_a_bastion_table(tmp_path: Path) -> None:
    path = write(tmp_path / "other.toml", "[bastion]\nport = 9001\n")
    assert load_settings(path).port == 9001


def test_config_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "x.toml", "port = 9002\n")
    monkeypatch.setenv("BASTION_CONFIG", str(tmp_path / "x.toml"))
    assert load_settings().port == 9002


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    write(tmp_path / "bastion.toml", "prot = 9000\n")
    with pytest.raises(ConfigError, match=r"'prot'.*unknown setting"):
        load_settings()


def test_unknown_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_UNSAFE_HTTTP", "true")
    with pytest.raises(ConfigError, match="BASTION_UNSAFE_HTTTP"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "value", "key"),
    [
        ("BASTION_PORT", "70000", "port"),
        ("BASTION_PORT", "eighty", "port"),
        ("BASTION_UNSAFE_HTTP", "yes", "unsafe_http"),
        ("BASTION_UNSAFE_HTTP", "on", "unsafe_http"),
        ("BASTION_LOG_FORMAT", "xml", "log_format"),
        ("BASTION_HOST", "", "host"),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)]
)
def test_booleans_parse_strictly(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("BASTION_UNSAFE_HTTP", raw)
    assert load_settings().unsafe_http is expected


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "bastion.toml", "port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_database_password_is_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_DATABASE_URL", "postgresql+psycopg://app:Sup3rS3cret@db.internal/bastion")
    settings = load_settings()
    assert "Sup3rS3cret" not in repr(settings)
    assert "Sup3rS3cret" not in str(settings)
    shown = display_settings(settings)
    assert "Sup3rS3cret" not in str(shown)
    assert shown["effective_database_url"] == "postgresql+psycopg://app:***@db.internal/bastion"
    assert settings.effective_database_url.endswith("Sup3rS3cret@db.internal/bastion")


def test_bad_value_error_does_not_echo_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PORT", "hunter2-password")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)

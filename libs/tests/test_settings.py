"""Settings: read from env / .env once; an invalid value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from codex_broker.libs.settings import CommonSettings, SettingsError, load_settings


class DemoSettings(CommonSettings):
    metrics_port: int = Field(default=9199, ge=0, le=65535, description="Port of /metrics")
    demo_token: SecretStr | None = Field(default=None, description="A secret")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env leaks in
    for name in ("REDIS_URL", "HTTP_API_PORT", "LOG_LEVEL", "KEY_PREFIX", "DEMO_TOKEN", "METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings(DemoSettings)
    assert settings.http_api_port == 3000
    assert settings.data_root == Path(".data")
    assert settings.keys.prefix == "cb"
    assert settings.api_base == "http://127.0.0.1:3000"
    assert settings.metrics_port == 9199


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_API_PORT", "abc"),
        ("HTTP_API_PORT", "70000"),
        ("LOG_LEVEL", "LOUD"),
        ("KEY_PREFIX", "has space"),
        ("METRICS_PORT", "-1"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(DemoSettings)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid setting {name}:" in err


def test_dotenv_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HTTP_API_PORT=3100\nKEY_PREFIX=fromfile\n")
    monkeypatch.setenv("KEY_PREFIX", "fromenv")
    settings = load_settings(DemoSettings)
    assert settings.http_api_port == 3100
    assert settings.key_prefix == "fromenv"


def test_empty_value_means_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEMO_TOKEN=\nREDIS_URL=\n")
    settings = load_settings(DemoSettings)
    assert settings.demo_token is None
    assert "redis_url" not in settings.model_fields_set


def test_secret_values_are_collected_for_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "s3cr3t-value")
    settings = load_settings(DemoSettings)
    assert settings.secret_values() == ["s3cr3t-value"]
    assert "s3cr3t-value" not in repr(settings)

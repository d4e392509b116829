"""`.env.example` is generated from the settings classes and committed; stale = test failure."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from codex_broker.cli import env_example
from codex_broker.libs.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "uv run codex-broker env-example > .env.example"


def test_env_example_is_current() -> None:
    committed = (ROOT / ".env.example").read_text()
    assert committed == env_example.render(), (
        f".env.example is stale (a settings class changed): regenerate it with `{REGENERATE}`"
    )


def test_every_service_has_a_settings_class() -> None:
    for _service, package in env_example.SERVICE_PACKAGES:
        assert issubclass(env_example.load_settings_class(package), CommonSettings)


class _Demo(CommonSettings):
    metrics_port: int = Field(default=9999, description="Demo metrics port")
    demo_token: SecretStr | None = Field(default=None, description="A token")
    demo_list: list[str] = Field(default_factory=lambda: ["a", "b"], description="Names")
    redis_url: str = Field(default="redis://elsewhere", description="Redis for the demo")


def test_render_rules() -> None:
    text = env_example.render(
        [
            env_example.Section("common", CommonSettings),
            env_example.Section("demo", _Demo),
            env_example.Section("again", _Demo),
        ]
    )
    lines = text.splitlines()
    assert "# REDIS_URL=redis://127.0.0.1:6379/0" in lines
    assert "# METRICS_PORT=9999" in lines  # per-service default, commented out
    assert "DEMO_TOKEN=" in lines  # secrets empty and uncommented
    assert lines.count("DEMO_TOKEN=") == 1  # a second empty line would override a filled-in one
    assert '# DEMO_LIST=["a", "b"]' in lines
    assert "# Log level (one of: DEBUG, INFO, WARNING, ERROR)" in lines
    assert "# INSTANCE_ID=" in lines  # computed per process: no host or pid in the file
    assert lines.count("# METRICS_PORT=9999") == 2  # each section whose default differs from common
    assert lines.count('# DEMO_LIST=["a", "b"]') == 1  # listed once where first declared
    assert all(not ln or ln.startswith("#") or ln.endswith("=") for ln in lines)


def test_no_secret_value_has_a_default_in_the_file() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.endswith("="), f"uncommented non-empty line in .env.example: {line}"

"""A CODEX_HOME whose config.toml points Codex 0.169 at the project's fake Responses endpoint.

This is exactly what an operator does to use Azure or a proxy: a custom `model_provider` with
`wire_api = "responses"` and a `base_url`. Retries are off so that a scripted model error
becomes a failed turn at once instead of a retry loop; analytics, update checks and every
feature that reaches for the network on its own are off.
"""

from __future__ import annotations

from pathlib import Path

FAKE_MODEL = "fake-model"
FAKE_PROVIDER = "fake"
# The provider reads its key from this variable: the same one the runner passes as Codex auth.
FAKE_ENV_KEY = "OPENAI_API_KEY"
FAKE_API_KEY = "sk-fake-model-key-000000000000"


def fake_config_toml(base_url: str, *, model: str = FAKE_MODEL, extra: str = "") -> str:
    return f"""# written by tests/fakes/codex_home.py
model = "{model}"
model_provider = "{FAKE_PROVIDER}"
check_for_update_on_startup = false

[model_providers.{FAKE_PROVIDER}]
name = "Fake Responses endpoint"
base_url = "{base_url}"
env_key = "{FAKE_ENV_KEY}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 60000
supports_websockets = false

[analytics]
enabled = false

[history]
persistence = "none"
{extra}"""


def write_codex_home(codex_home: Path, base_url: str, *, model: str = FAKE_MODEL, extra: str = "") -> Path:
    """Create `codex_home` (if needed) with a config.toml for the fake; returns the config path."""
    codex_home.mkdir(parents=True, exist_ok=True)
    config = codex_home / "config.toml"
    config.write_text(fake_config_toml(base_url, model=model, extra=extra), encoding="utf-8")
    return config

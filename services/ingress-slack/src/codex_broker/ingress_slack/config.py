"""Settings of ingress-slack (read once in `main()` and passed down)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from codex_broker.libs.rawlog import RawLogSettings

MB = 1024 * 1024
SLACK_FILES_HOST = "files.slack.com"


class Settings(RawLogSettings):
    metrics_port: int = Field(default=9101, ge=0, le=65535, description="Port of /metrics and health")

    slack_app_token: SecretStr = Field(
        default=SecretStr(""), description="App-level token (xapp-…) with connections:write, for Socket Mode"
    )
    slack_bot_token: SecretStr = Field(default=SecretStr(""), description="Bot token (xoxb-…)")
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL; must end in /api/"
    )
    slack_allow_bots: bool = Field(
        default=False, description="Forward messages of other bots (the broker's own are always ignored)"
    )
    slack_forward_unmentioned: bool = Field(
        default=False,
        description="Forward top-level channel messages without a mention (they never continue a session)",
    )
    slack_native_streaming: bool = Field(
        default=True, description="Try Slack's chat.startStream streaming before the updated-message fallback"
    )
    slack_progress_interval_s: float = Field(
        default=1.0, ge=0.05, le=60, description="Least seconds between two updates of one live message"
    )
    slack_user_cache_ttl_s: int = Field(
        default=3600, ge=0, description="Seconds a users.info display name is cached (0 = no cache)"
    )
    slack_api_timeout_s: float = Field(default=30.0, gt=0, le=300, description="Timeout of one Web API call")
    slack_max_retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a transient or rate-limited Web API call"
    )
    slack_retry_after_max_s: float = Field(
        default=60.0, gt=0, description="Longest Retry-After honoured inline; longer leaves the entry pending"
    )
    slack_download_max_bytes: int = Field(
        default=20 * MB, ge=1, description="Cap of one attachment download (url_private)"
    )
    slack_file_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [SLACK_FILES_HOST],
        description="Hosts the bot token may be sent to for downloads (comma separated; API host added)",
    )
    allowed_file_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Extra directories uploads may read from besides DATA_ROOT/sessions and DATA_ROOT/repos",
    )
    slack_history_max_pages: int = Field(
        default=50, ge=1, le=1000, description="Pages of conversations.replies read for one history request"
    )
    outbound_block_ms: int = Field(
        default=2000,
        ge=10,
        le=60_000,
        description="Longest blocking read of the outbound stream (shutdown waits it)",
    )
    outbound_concurrency: int = Field(
        default=8, ge=1, le=256, description="Threads (sessions) whose outbound actions run concurrently"
    )

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http(s) URL")
        if not value.endswith("/api/"):
            raise ValueError("must end in /api/ (e.g. https://slack.com/api/)")
        return value

    @field_validator("slack_file_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_file_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @property
    def disabled_reason(self) -> str | None:
        """Why Slack I/O cannot run; None when both tokens are there."""
        if not self.slack_app_token.get_secret_value():
            return "SLACK_APP_TOKEN not set"
        if not self.slack_bot_token.get_secret_value():
            return "SLACK_BOT_TOKEN not set"
        return None

    @property
    def download_hosts(self) -> frozenset[str]:
        api_host = urlparse(self.slack_api_url).hostname or ""
        extra = {api_host} if api_host and api_host != "slack.com" else set()
        return frozenset({*self.slack_file_hosts, *extra})

    @property
    def upload_roots(self) -> list[Path]:
        # outbox: the http-api's post-file copies (DATA_ROOT/outbox/<action>/<name>) are uploaded from there
        roots = [self.data_root / "sessions", self.data_root / "repos", self.data_root / "outbox"]
        return [*roots, *self.allowed_file_roots]

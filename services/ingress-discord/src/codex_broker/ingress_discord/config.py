"""Settings of ingress-discord (read once in `main()` and passed down)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from codex_broker.libs.settings import CommonSettings
from codex_broker.libs.workspace_homes import homes_of, parse_homes

MB = 1024 * 1024
DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(CommonSettings):
    metrics_port: int = Field(default=9107, ge=0, le=65535, description="Port of /metrics and health")

    discord_bot_token: SecretStr = Field(
        default=SecretStr(""), description="Bot token of the Discord application (Bot → Reset Token)"
    )
    discord_api_base_url: str = Field(
        default=DISCORD_API,
        description="Discord REST base URL (only tests point it elsewhere: a fake Discord on loopback)",
    )
    discord_gateway_url: str = Field(
        default=DISCORD_GATEWAY,
        description="Discord gateway websocket URL (only tests point it elsewhere: a fake on loopback)",
    )
    discord_allowed_guilds: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Guild (server) ids the bot answers in (comma separated; empty = all)",
    )
    discord_allowed_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Channel ids where a mention opens a task thread (comma separated; empty = all)",
    )
    discord_allowed_roles: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Role ids whose members may use the bot in guilds (comma separated; empty = everyone)",
    )
    discord_admin_roles: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Role ids whose members pass the role allow-list and may send /cd and /config "
        "(the orchestrator's ADMINS still decides them)",
    )
    discord_dms_allowed: bool = Field(default=True, description="Direct messages to the bot are sessions")
    discord_progress_interval_s: float = Field(
        default=1.0,
        ge=0.05,
        le=60,
        description="Least seconds between two edits of one live message (Discord allows about 5 per 5 s)",
    )
    discord_max_upload_bytes: int = Field(
        default=10 * MB, ge=1, description="Largest file sent into a thread (Discord's limit without boosts)"
    )
    discord_download_max_bytes: int = Field(
        default=20 * MB, ge=1, description="Cap of one attachment download"
    )
    discord_backfill_days: int = Field(
        default=7,
        ge=0,
        le=90,
        description="Threads active within these days are backfilled after a reconnect",
    )
    discord_thread_archive_minutes: int = Field(
        default=1440, description="Auto-archive duration of a task thread (60, 1440, 4320 or 10080)"
    )
    discord_register_commands: bool = Field(
        default=True, description="Register the /codex application command when the bot connects"
    )
    workspace_home_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Workspace mode: home channels as <platform>:<channel id>, comma-separated "
        "(e.g. slack:C123,discord:456); the orchestrator routes every message there to the channel's "
        "operator session (with WORKSPACE_ROOT), and ingress-discord forwards every message of its "
        "discord: ones, mention or not",
    )
    outbound_concurrency: int = Field(
        default=8, ge=1, le=256, description="Threads (sessions) whose outbound actions run concurrently"
    )
    outbound_block_ms: int = Field(
        default=2000, ge=10, le=60_000, description="Longest blocking read of the outbound stream"
    )

    @field_validator(
        "discord_allowed_guilds",
        "discord_allowed_channels",
        "discord_allowed_roles",
        "discord_admin_roles",
        "workspace_home_channels",
        mode="before",
    )
    @classmethod
    def _split(cls, value: object) -> object:
        return _csv(value)

    @field_validator("workspace_home_channels")
    @classmethod
    def _homes(cls, value: list[str]) -> list[str]:
        parse_homes(value)  # the orchestrator refuses a malformed entry: so does the ingress
        return value

    @property
    def home_channels(self) -> frozenset[str]:
        return homes_of("discord", self.workspace_home_channels)

    @field_validator("discord_api_base_url", "discord_gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.netloc:
            raise ValueError("must be an http(s) or ws(s) URL")
        return value.rstrip("/") if parsed.scheme.startswith("http") else value

    @field_validator("discord_thread_archive_minutes")
    @classmethod
    def _archive(cls, value: int) -> int:
        if value not in (60, 1440, 4320, 10080):
            raise ValueError("must be 60, 1440, 4320 or 10080")
        return value

    @property
    def disabled_reason(self) -> str | None:
        """Why Discord I/O cannot run; None when the bot token is there."""
        if not self.discord_bot_token.get_secret_value():
            return "DISCORD_BOT_TOKEN not set"
        return None

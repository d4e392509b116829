"""Settings of ingress-feishu (read once in `main()`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from codex_broker.libs.rawlog import RawLogSettings


class Settings(RawLogSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535, description="Port of /metrics and health")

    feishu_app_id: str = Field(default="", description="Feishu/Lark app id (cli_...); empty = disabled")
    feishu_app_secret: SecretStr = Field(default=SecretStr(""), description="Feishu/Lark app secret")
    feishu_domain: str = Field(
        default="https://open.feishu.cn",
        description="Open platform origin: https://open.feishu.cn, https://open.larksuite.com, or a test URL",
    )
    feishu_bot_open_id: str = Field(
        default="", description="The bot's open_id (ou_...); empty = fetched from the bot info API"
    )
    feishu_group_message_mode: Literal["all", "at_only"] = Field(
        default="all",
        description="all: replies in a thread with a session continue it; at_only: only @bot messages",
    )
    feishu_p2p: bool = Field(default=True, description="Private chats with the bot are sessions")
    feishu_ws_lease_ms: int = Field(
        default=15_000, ge=1000, description="Lease on the app's single long connection across replicas"
    )
    feishu_card_updates_per_s: float = Field(
        default=5.0, gt=0, le=10, description="Max updates per second of one streaming card"
    )
    feishu_outbound_concurrency: int = Field(
        default=8, ge=1, le=64, description="Outbound actions handled in parallel (per-thread order kept)"
    )
    feishu_request_timeout_s: float = Field(default=20.0, gt=0, description="Timeout of one Feishu API call")
    feishu_user_cache_ttl_s: int = Field(
        default=3600,
        ge=0,
        description="Seconds a sender's display name (contact/v3) is cached in Redis (0 = no cache)",
    )

    @field_validator("feishu_domain")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        # lark.Client rejects a domain with a path, and "https://x/" has one
        return value.rstrip("/")

    @property
    def enabled(self) -> bool:
        return bool(self.feishu_app_id and self.feishu_app_secret.get_secret_value())

    @property
    def disabled_reason(self) -> str | None:
        if not self.feishu_app_id:
            return "FEISHU_APP_ID not set"
        if not self.feishu_app_secret.get_secret_value():
            return "FEISHU_APP_SECRET not set"
        return None

"""Settings shared by every service. Each service subclasses `CommonSettings` and reads it once
in `main()` with `load_settings`, which turns a validation error into one clear line naming the
environment variable."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from codex_broker.libs.keys import DEFAULT_PREFIX, DEFAULT_SHARD_COUNT, Keys


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class CommonSettings(BaseSettings):
    # env_ignore_empty: `SLACK_APP_TOKEN=` (as in .env.example) means unset, not an empty secret
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL")
    data_root: Path = Field(default=Path("./.data"), description="Root of workspaces, repos, logs")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level")
    key_prefix: str = Field(
        default=DEFAULT_PREFIX, pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Prefix of every Redis key"
    )
    shard_count: int = Field(
        default=DEFAULT_SHARD_COUNT, ge=1, le=1024, description="Session shards (same value everywhere)"
    )
    http_api_port: int = Field(default=3000, ge=1, le=65535, description="Port of the http-api")
    http_api_host: str = Field(default="127.0.0.1", description="Bind address of the http-api")
    session_api_host: str | None = Field(
        default=None,
        description="Second bind address of the http-api, only for Codex's commands: a loopback "
        "address of its own (`up`: 127.0.0.42) that the sandbox's network allow-list can name "
        "without admitting 127.0.0.1's other services; /admin is refused there",
    )
    network_allowed_domains: list[str] = Field(
        default_factory=list,
        description="Hosts a sealed session's commands and jobs may reach besides the broker API when the "
        'session has network access (JSON list, e.g. ["github.com","*.github.com"]; "*" = any '
        "public host). Local and private addresses stay blocked unless named",
    )
    broker_api_base: str | None = Field(
        default=None,
        description="URL Codex uses to reach the http-api (default http://SESSION_API_HOST or HOST:PORT)",
    )
    instance_id: str = Field(default_factory=default_instance_id, description="Name of this replica")
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of /metrics and health")
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="Seconds between heartbeats")
    heartbeat_ttl_s: int = Field(default=20, ge=2, description="Heartbeat key TTL in seconds")
    stream_maxlen: int = Field(default=100_000, ge=100, description="Approximate MAXLEN of streams")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before dead-lettering")
    claim_idle_ms: int = Field(default=30_000, ge=100, description="Idle time before reclaiming an entry")

    # each service overrides the default of its own metrics port
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Port of /metrics and health (0 = off)")

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, shard_count=self.shard_count)

    @property
    def api_base(self) -> str:
        host = self.session_api_host or self.http_api_host
        return self.broker_api_base or f"http://{host}:{self.http_api_port}"

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    pass


def describe_errors(model: type[BaseSettings], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        lines.append(f"invalid setting {field.upper()}: {error['msg']}")
    return "; ".join(lines)


def load_settings(model: type[S], **overrides: object) -> S:
    """Read settings once; an invalid value stops start-up with a message naming the variable."""
    try:
        return model(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        message = describe_errors(model, exc)
        print(message, file=sys.stderr)
        raise SettingsError(2) from exc

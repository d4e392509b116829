"""Settings shared by every service. Each service subclasses `CommonSettings` and reads it once
in `main()` with `load_settings`, which turns a validation error into one clear line naming the
environment variable."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codex_broker.libs.api_address import pinned_api_base
from codex_broker.libs.keys import DEFAULT_PREFIX, DEFAULT_SHARD_COUNT, Keys


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """`url` carrying `username:password` (URL-quoted) in place of whatever userinfo it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(username or "", safe="")
    userinfo = f"{user}:{quote(password, safe='')}" if password else user
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host))


def url_password(url: str) -> str | None:
    password = urlsplit(url).password
    return unquote(password) if password else None


def _read_secret_file(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"REDIS_PASSWORD_FILE {path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"REDIS_PASSWORD_FILE {path} is empty")
    return value


def _raw(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value() or None
    return str(value) if value else None


class CommonSettings(BaseSettings):
    # env_ignore_empty: `SLACK_APP_TOKEN=` (as in .env.example) means unset, not an empty secret
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL")
    redis_username: str | None = Field(
        default=None, description="Redis ACL user, put into REDIS_URL (compose/k8s: one per service)"
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis password, put into REDIS_URL (kept out of the URL in config)"
    )
    redis_password_file: Path | None = Field(
        default=None, description="File holding REDIS_PASSWORD (a compose/k8s secret mounted as a file)"
    )
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
    audit_retention_days: int = Field(
        default=90, ge=0, description="Audit records older than this are trimmed (0 = keep by count only)"
    )
    audit_maxlen: int = Field(default=1_000_000, ge=100, description="Approximate MAXLEN of the audit stream")

    # each service overrides the default of its own metrics port
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Port of /metrics and health (0 = off)")

    @model_validator(mode="before")
    @classmethod
    def _credentials_into_url(cls, data: Any) -> Any:
        """REDIS_USERNAME / REDIS_PASSWORD (from a per-service secret) go into REDIS_URL, so every
        client built from the URL authenticates; compose cannot splice a secret into a URL."""
        if not isinstance(data, dict):
            return data
        password = _raw(data.get("redis_password"))
        if password is None and data.get("redis_password_file"):
            password = _read_secret_file(Path(str(data["redis_password_file"])))
            data = {**data, "redis_password": password}
        if password is None:
            return data
        url = str(data.get("redis_url") or cls.model_fields["redis_url"].default)
        return {**data, "redis_url": with_credentials(url, _raw(data.get("redis_username")), password)}

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, shard_count=self.shard_count)

    @property
    def api_base(self) -> str:
        host = self.session_api_host or self.http_api_host
        # what Codex's commands are given: a private host name becomes its address (api_address)
        return pinned_api_base(self.broker_api_base or f"http://{host}:{self.http_api_port}")

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        in_url = url_password(self.redis_url)  # `up` hands children a URL with the password in it
        if in_url:
            values.append(in_url)
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

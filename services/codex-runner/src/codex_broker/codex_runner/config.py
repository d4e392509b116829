"""Settings of codex-runner, read once in `main()`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr

from codex_broker.codex_runner.git_identity import GitIdentitySettings
from codex_broker.libs.rawlog import RawLogSettings


class Settings(RawLogSettings, GitIdentitySettings):
    metrics_port: int = Field(default=9104, ge=0, le=65535, description="Port of /metrics and health")
    # frequent beats: the orchestrator tells a thread its runner died within seconds of the last one
    heartbeat_interval_s: float = Field(default=2.0, gt=0, description="Seconds between heartbeats")

    # turns wait on the model, not the CPU: sized by memory per live turn (docs/benchmarks.md,
    # "Concurrency defaults"), so a burst of 50 new threads all reach the model at once
    max_concurrent_turns: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Turns one runner drives at once (it claims only with a free slot)",
    )
    codex_bin: str | None = Field(
        default=None, description="Codex CLI executable (default: the pinned one in .tools, then PATH)"
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Codex auth by API key (default profile); passed to Codex as OPENAI_API_KEY"
    )
    codex_auth_json_path: Path | None = Field(
        default=None,
        description="Codex auth.json to copy into CODEX_HOME (default profile), e.g. a ChatGPT login",
    )
    codex_disable_apps: bool = Field(
        default=True,
        description="Disable Codex apps/connectors and plugins (features apps, plugins, remote_plugin)",
    )
    codex_disable_mcp: bool = Field(
        default=True,
        description="Disable every MCP server configured in config.toml (mcp_servers.<name>.enabled)",
    )
    codex_config_overrides: list[str] = Field(
        default_factory=list,
        description='Extra `-c key=value` overrides for the app-server (JSON list, e.g. ["model=\\"o3\\""])',
    )
    session_token_ttl_s: int = Field(
        default=86_400,
        ge=60,
        description="Lifetime of a session's http-api token; every run of the session extends it",
    )
    unsealed_sandboxes: list[Literal["read-only", "danger-full-access"]] = Field(
        default_factory=list,
        description="Unsealed sandbox modes this runner accepts besides workspace-write (JSON list, "
        'e.g. ["danger-full-access"]); a run asking for another is failed with sandbox_refused',
    )
    seal_sessions: bool = Field(
        default=True,
        description="Seal each workspace-write session's commands in a permission profile of its own "
        "(no other session, CODEX_HOME secrets, logs or broker data); see docs/security.md",
    )
    watchdog_idle_s: float = Field(
        default=900.0, gt=0, description="Interrupt and report a turn with no event for this many seconds"
    )
    approval_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Decline an approval request with no decision within this many seconds",
    )
    # long enough for a typical turn: a rollout should not cut one (k8s
    # terminationGracePeriodSeconds and compose stop_grace_period are set above it)
    tool_call_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait for the orchestrator's answer to a dynamic tool call (workspace mode); "
        "then the call fails for the model",
    )
    drain_grace_s: float = Field(
        default=900.0,
        ge=0,
        validation_alias=AliasChoices("RUNNER_DRAIN_GRACE_S", "DRAIN_GRACE_S", "drain_grace_s"),
        description="On SIGTERM or `codex-broker drain`, stop claiming and let running turns finish "
        "this long; the rest are interrupted with a restart notice in their thread",
    )
    request_timeout_s: float = Field(
        default=60.0, gt=0, description="Timeout of one app-server request (thread/start, turn/start, ...)"
    )
    ping_interval_s: float = Field(
        default=10.0, gt=0, description="Liveness probe of a busy app-server; no answer within it → restart"
    )
    restart_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the restart backoff of a crashed app-server"
    )
    delta_flush_ms: int = Field(default=100, ge=1, description="Coalesce agent text deltas for this long")
    delta_flush_bytes: int = Field(default=2048, ge=1, description="...or until this many bytes are pending")
    output_tail_chars: int = Field(default=2000, ge=0, description="Command output kept in item events")

    # What the Codex child may see of the runner's environment: nothing but these.
    path: str = Field(
        default="/usr/local/bin:/usr/bin:/bin",
        validation_alias=AliasChoices("CODEX_CHILD_PATH", "PATH"),
        description="PATH of the Codex child (default: the runner's PATH)",
    )
    home: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CODEX_CHILD_HOME", "HOME"),
        description="HOME of the Codex child (default: the runner's HOME, else DATA_ROOT)",
    )
    http_proxy: str | None = Field(default=None, description="HTTP_PROXY passed to Codex")
    https_proxy: str | None = Field(default=None, description="HTTPS_PROXY passed to Codex")
    all_proxy: str | None = Field(default=None, description="ALL_PROXY passed to Codex")
    no_proxy: str | None = Field(default=None, description="NO_PROXY passed to Codex")

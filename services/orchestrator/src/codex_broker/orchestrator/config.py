"""Settings of the orchestrator (read once in main(), passed down)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from codex_broker.libs.budgets import BudgetSettings
from codex_broker.orchestrator.housekeeping.config import HousekeepingSettings

CsvList = Annotated[list[str], NoDecode]
Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]


def _csv(value: object) -> object:
    """Lists come from the environment as 'a,b,c' (or JSON); both are accepted."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(HousekeepingSettings, BudgetSettings):
    metrics_port: int = Field(default=9103, ge=0, le=65535, description="Port of /metrics and health")

    # ---- state machine ---------------------------------------------------------------------
    # 0: a message into an idle session starts its turn at once; later ones steer it
    debounce_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="Opt-in quiet window before a turn starts (0 = start at once, later messages steer)",
    )
    message_during_run: Literal["steer", "queue"] = Field(
        default="steer", description="A message during a run steers the active turn or waits for the next"
    )
    # one runner's default slots: beyond what runners can claim, admission's fair FIFO is the
    # better place to wait than the runs stream (docs/benchmarks.md, "Concurrency defaults")
    max_active_runs: int = Field(
        default=64,
        ge=0,
        description="Runs in flight across all sessions (0 = unlimited); FIFO beyond. "
        "Set it to runners times MAX_CONCURRENT_TURNS",
    )
    session_queue_limit: int = Field(default=20, ge=1, description="Messages waiting per session")

    # ---- policy ----------------------------------------------------------------------------
    allowed_users: CsvList = Field(default_factory=list, description="User ids allowed (empty = all)")
    allowed_channels: CsvList = Field(
        default_factory=list,
        description="Conversation ids allowed (empty = all; DMs are governed by DMS_ALLOWED)",
    )
    admins: CsvList = Field(default_factory=list, description="User ids allowed to use /cd and /config")
    dms_allowed: bool = Field(default=True, description="Direct messages start sessions")
    mention_required: bool = Field(
        default=True, description="A channel message must mention the bot to start a session"
    )
    refusal_interval_s: int = Field(
        default=600, ge=1, description="At most one refusal per user and conversation in this window"
    )
    cd_aliases: dict[str, str] = Field(
        default_factory=dict, description='Named workspaces for /cd, JSON {"name": "/abs/path"}'
    )

    # ---- codex -----------------------------------------------------------------------------
    sandbox: Sandbox = Field(default="workspace-write", description="Codex sandbox for every turn")
    # on by default: with it off, Codex's sandbox blocks every socket, loopback included, and
    # Codex could not reach the broker's own API (history, posting, jobs) from its shell
    network_access: bool = Field(
        default=True,
        description="Network for Codex's commands: sealed sessions reach only the broker API and the "
        "codex-runner's NETWORK_ALLOWED_DOMAINS through Codex's proxy; false: no socket at all",
    )
    approval_policy: Literal["never", "on-request"] = Field(
        default="never", description="on-request shows Approve / Deny buttons in the thread"
    )
    codex_model: str | None = Field(default=None, description="Model override (default: CODEX_HOME config)")
    auth_profile: str = Field(default="default", description="Codex auth profile for new sessions")

    # ---- backfill, attachments --------------------------------------------------------------
    slack_initial_thread_history_count: int = Field(
        default=8, ge=0, le=100, description="Earlier thread messages given to Codex on the first mention"
    )
    backfill_timeout_s: float = Field(default=5.0, gt=0, description="Wait for the history RPC at most this")
    download_timeout_s: float = Field(default=30.0, gt=0, description="Wait for attachment downloads")
    attachment_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description="Largest attachment")
    team_memory_max_bytes: int = Field(default=32_768, ge=0, description="Cap of team AGENT.md injected")

    # ---- rendering -------------------------------------------------------------------------
    progress_interval_ms: int = Field(
        default=700, ge=0, description="Minimum gap between progress snapshots caused by answer text"
    )

    # ---- replicas, crash safety --------------------------------------------------------------
    shard_lease_ms: int = Field(default=6000, ge=500, description="Shard lease time (takeover bound)")
    shard_renew_interval_s: float = Field(default=1.5, gt=0, description="Shard lease renewal period")
    reconcile_interval_s: float = Field(default=2.0, gt=0, description="Period of the active-runs check")
    final_order_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest wait for a thread's previous answer to be posted before the next one",
    )
    # runners beat every 2 s: 7 s + one 2 s reconcile period keeps "told within 10 s"
    runner_dead_after_s: float = Field(
        default=7.0, gt=0, description="A runner whose heartbeat is older than this is gone"
    )
    run_claim_timeout_s: float = Field(
        default=120.0, gt=0, description="A run no runner claimed within this is reported failed"
    )
    shard_inflight_limit: int = Field(default=500, ge=1, description="Entries in memory per shard")
    max_concurrent_items: int = Field(
        default=96, ge=1, description="Session work items handled at the same time (all shards)"
    )
    redis_max_connections: int = Field(default=160, ge=8, description="Size of the Redis connection pool")
    # ---- workspace mode (docs/architecture.md "Workspace mode") ----------------------------
    workspace_home_channels: CsvList = Field(
        default_factory=list,
        description="Workspace mode: home channels as <platform>:<channel id>, comma-separated "
        "(e.g. slack:C123,discord:456); every message there goes to the channel's operator session",
    )
    workspace_root: str = Field(
        default="",
        description="Workspace mode: delegated task sessions run in directories under this one "
        "(outside DATA_ROOT); both settings are needed to turn the mode on",
    )

    housekeeping_enabled: bool = Field(
        default=True, description="Run log retention and disk-pressure housekeeping in this process"
    )

    @field_validator("allowed_users", "allowed_channels", "admins", "workspace_home_channels", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _csv(value)

    @model_validator(mode="after")
    def _workspace_mode_whole(self) -> Settings:
        # half a configuration would silently leave the mode off (or delegate nowhere)
        if bool(self.workspace_home_channels) != bool(self.workspace_root.strip()):
            raise ValueError("workspace mode needs both WORKSPACE_HOME_CHANNELS and WORKSPACE_ROOT")
        return self

"""Settings of log retention and disk-pressure cleanup (the orchestrator's Settings inherit them)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from codex_broker.libs.settings import CommonSettings

GIB = 1024**3
HOUR_MS = 3_600_000


class HousekeepingSettings(CommonSettings):
    log_retention_hours: int = Field(
        default=168, ge=0, description="Hourly log files older than this many hours are removed (0 = keep)"
    )
    outbox_max_age_s: int = Field(
        default=24 * 3600, ge=60, description="Upload copies in DATA_ROOT/outbox older than this are removed"
    )
    disk_cleanup_enabled: bool = Field(
        default=False, description="Free disk space when it falls below DISK_CLEANUP_MIN_FREE_BYTES"
    )
    disk_cleanup_dry_run: bool = Field(
        default=True, description="Only log what disk cleanup would delete (review before turning off)"
    )
    disk_cleanup_min_free_bytes: int = Field(
        default=10 * GIB, ge=0, description="Disk cleanup starts when free space on DATA_ROOT is below this"
    )
    disk_cleanup_target_free_bytes: int = Field(
        default=20 * GIB, ge=0, description="Disk cleanup deletes until this much space is free"
    )
    disk_cleanup_inactive_session_ms: int = Field(
        default=24 * HOUR_MS, ge=0, description="Sessions idle at least this long may lose their workspace"
    )
    disk_cleanup_job_protection_ms: int = Field(
        default=48 * HOUR_MS,
        ge=0,
        description="Active turns, pending inbound work and running jobs protect a session this long at most",
    )
    disk_cleanup_old_log_ms: int = Field(
        default=24 * HOUR_MS, ge=0, description="Under disk pressure, log files older than this are deleted"
    )
    disk_cleanup_check_interval_ms: int = Field(
        default=300_000, ge=1000, description="Milliseconds between disk-space checks and retention runs"
    )

    @model_validator(mode="after")
    def _target_not_below_minimum(self) -> Self:
        if self.disk_cleanup_target_free_bytes < self.disk_cleanup_min_free_bytes:
            raise ValueError("DISK_CLEANUP_TARGET_FREE_BYTES must be at least DISK_CLEANUP_MIN_FREE_BYTES")
        return self

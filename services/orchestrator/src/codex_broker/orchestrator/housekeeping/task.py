"""The housekeeping round (retention, then the disk check) and the loop that runs it on the one
replica holding the housekeeping lease."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.lease import Lease
from codex_broker.libs.logfiles import LogFile, logs_root, prune_empty_dirs, remove_files_older_than
from codex_broker.orchestrator.housekeeping import metrics
from codex_broker.orchestrator.housekeeping.candidates import (
    log_candidates,
    refresh_session,
    session_candidates,
)
from codex_broker.orchestrator.housekeeping.config import HousekeepingSettings
from codex_broker.orchestrator.housekeeping.executor import Outcome, execute_plan
from codex_broker.orchestrator.housekeeping.planner import (
    Candidate,
    Decision,
    Plan,
    Policy,
    plan_cleanup,
    session_decision,
)

log = logging.getLogger(__name__)

FreeSpaceProbe = Callable[[Path], int]
ADMIN_EVENTS_MAXLEN = 10_000
EVENT_ITEMS_MAX = 100
TIMELINE_MAX = 500
LEASE_NAME = "housekeeping"


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def policy_of(settings: HousekeepingSettings) -> Policy:
    return Policy(
        min_free_bytes=settings.disk_cleanup_min_free_bytes,
        target_free_bytes=settings.disk_cleanup_target_free_bytes,
        old_log_ms=settings.disk_cleanup_old_log_ms,
        inactive_session_ms=settings.disk_cleanup_inactive_session_ms,
        protection_ms=settings.disk_cleanup_job_protection_ms,
    )


@dataclass
class CleanupReport:
    free_before: int
    free_after: int
    plan: Plan
    outcome: Outcome


class Housekeeper:
    """One round = retention + disk check. Clock and free-space probe are injectable for tests."""

    def __init__(
        self,
        settings: HousekeepingSettings,
        redis: Redis,
        *,
        probe: FreeSpaceProbe = disk_free_bytes,
        clock: Callable[[], float] = time.time,
        prune_idle_s: float = 300.0,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        self.data_root = Path(settings.data_root)
        self.policy = policy_of(settings)
        self.probe = probe
        self.clock = clock
        self.prune_idle_s = prune_idle_s

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run_once(self) -> CleanupReport | None:
        await self.retention()
        await self.prune_outbox()
        return await self.check_disk()

    async def prune_outbox(self) -> int:
        """Drop the http-api's upload copies (DATA_ROOT/outbox/<action>/) older than the limit:
        a copy normally goes once the ingress answers; one whose answer never came stays behind."""
        outbox = self.data_root / "outbox"
        cutoff = self.clock() - self.settings.outbox_max_age_s
        removed = await asyncio.to_thread(remove_stale_dirs, outbox, cutoff)
        if removed:
            log.info("outbox pruned", extra={"directories": removed})
        return removed

    # ---- retention ----------------------------------------------------------------------------
    async def retention(self) -> list[LogFile]:
        hours = self.settings.log_retention_hours
        if hours <= 0:
            return []
        cutoff = datetime.fromtimestamp(self.clock(), UTC) - timedelta(hours=hours)
        root = logs_root(self.data_root)
        removed = await asyncio.to_thread(remove_files_older_than, root, cutoff)
        await asyncio.to_thread(prune_empty_dirs, root, True, self.prune_idle_s)
        if removed:
            size = sum(f.size for f in removed)
            metrics.LOG_RETENTION_FILES.inc(len(removed))
            metrics.LOG_RETENTION_BYTES.inc(size)
            log.info(
                "log retention removed %d files (%d bytes)",
                len(removed),
                size,
                extra={"files": len(removed), "size_bytes": size},
            )
            await self._admin_event(
                {"kind": "log_retention", "files": len(removed), "bytes": size, "hours": hours}
            )
        return removed

    # ---- disk pressure ------------------------------------------------------------------------
    async def free_bytes(self) -> int:
        self.data_root.mkdir(parents=True, exist_ok=True)
        free = await asyncio.to_thread(self.probe, self.data_root)
        metrics.DISK_FREE_BYTES.set(free)
        return free

    async def check_disk(self) -> CleanupReport | None:
        free = await self.free_bytes()
        if not self.settings.disk_cleanup_enabled or free >= self.policy.min_free_bytes:
            return None
        now = self.now_ms()
        candidates = await self.candidates(now)
        plan = plan_cleanup(free, candidates, self.policy, now)
        dry_run = self.settings.disk_cleanup_dry_run
        mode = "dry_run" if dry_run else "delete"
        log.warning(
            "disk cleanup (%s): %d bytes free < %d; %d deletions planned (%d bytes), %d protected",
            mode,
            free,
            self.policy.min_free_bytes,
            len(plan.deletions),
            plan.planned_bytes,
            len(plan.kept),
            extra={"free_bytes": free, "planned_bytes": plan.planned_bytes, "notes": list(plan.notes)},
        )
        outcome = await execute_plan(plan, dry_run=dry_run, data_root=self.data_root, recheck=self._recheck)
        free_after = await self.free_bytes()
        metrics.DISK_CLEANUP_RUNS.labels(mode=mode).inc()
        metrics.DISK_CLEANUP_BYTES.inc(outcome.deleted_bytes)
        for item in outcome.items:
            if item.status == "deleted":
                metrics.DISK_CLEANUP_ITEMS.labels(kind=item.decision.candidate.kind).inc()
        await self._record_sessions(outcome)
        await self._admin_event(self._cleanup_event(mode, free, free_after, plan, outcome))
        return CleanupReport(free, free_after, plan, outcome)

    async def candidates(self, now_ms: int) -> list[Candidate]:
        logs = await asyncio.to_thread(log_candidates, self.data_root, now_ms - self.policy.old_log_ms)
        sessions = await session_candidates(
            self.redis, self.keys, self.data_root, now_ms - self.policy.inactive_session_ms
        )
        return logs + sessions

    async def _recheck(self, candidate: Candidate) -> Decision | None:
        fresh = await refresh_session(self.redis, self.keys, candidate)
        return session_decision(fresh, self.policy, self.now_ms())

    # ---- what operators see -------------------------------------------------------------------
    def _cleanup_event(
        self, mode: str, free_before: int, free_after: int, plan: Plan, outcome: Outcome
    ) -> dict[str, Any]:
        items = [item.to_event(self.data_root) for item in outcome.items]
        return {
            "kind": "disk_cleanup",
            "mode": mode,
            "free_bytes_before": free_before,
            "free_bytes_after": free_after,
            "min_free_bytes": self.policy.min_free_bytes,
            "target_free_bytes": self.policy.target_free_bytes,
            "planned_bytes": plan.planned_bytes,
            "deleted_bytes": outcome.deleted_bytes,
            "reaches_target": plan.reaches_target,
            "notes": list(plan.notes),
            "counts": {
                status: outcome.count(status)
                for status in ("would_delete", "deleted", "skipped", "failed", "kept")
            },
            "items": items[:EVENT_ITEMS_MAX],
            "items_total": len(items),
        }

    async def _admin_event(self, body: dict[str, Any]) -> None:
        body = {
            "at_ms": self.now_ms(),
            "instance": self.settings.instance_id,
            "service": "orchestrator",
            **body,
        }
        await self.redis.xadd(
            self.keys.admin_events_stream,
            {"data": json.dumps(body, default=str)},
            maxlen=ADMIN_EVENTS_MAXLEN,
            approximate=True,
        )

    async def _record_sessions(self, outcome: Outcome) -> None:
        """A timeline line on each session whose directory was removed."""
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for item in outcome.items:
            session_key = item.decision.candidate.session_key
            if item.status != "deleted" or session_key is None:
                continue
            entry = {
                "at_ms": self.now_ms(),
                "kind": "disk_cleanup",
                "summary": f"workspace removed by disk cleanup ({item.decision.candidate.size_bytes} bytes): "
                f"{item.decision.reason}",
            }
            pipe.lpush(self.keys.session_timeline(session_key), json.dumps(entry))
            pipe.ltrim(self.keys.session_timeline(session_key), 0, TIMELINE_MAX - 1)
            count += 1
        if count:
            await pipe.execute()


def remove_stale_dirs(root: Path, cutoff_s: float) -> int:
    """Remove the direct subdirectories of `root` last modified before `cutoff_s` (no symlinks)."""
    if not root.is_dir():
        return 0
    removed = 0
    for child in root.iterdir():
        try:
            if child.is_symlink() or not child.is_dir() or child.stat().st_mtime >= cutoff_s:
                continue
            shutil.rmtree(child)
            removed += 1
        except OSError as exc:
            log.warning("could not prune outbox entry", extra={"path": str(child), "error": str(exc)})
    return removed


def lease_ttl_ms(settings: HousekeepingSettings) -> int:
    # Long enough to outlive one round plus the wait before the next renewal.
    return max(2 * settings.disk_cleanup_check_interval_ms, 600_000)


async def housekeeping_task(
    settings: HousekeepingSettings,
    redis: Redis,
    stop: asyncio.Event,
    *,
    probe: FreeSpaceProbe = disk_free_bytes,
) -> None:
    """Run a housekeeping round every DISK_CLEANUP_CHECK_INTERVAL_MS while holding the lease."""
    keeper = Housekeeper(settings, redis, probe=probe)
    lease = Lease(redis, settings.keys.lease(LEASE_NAME), settings.instance_id, lease_ttl_ms(settings))
    interval_s = settings.disk_cleanup_check_interval_ms / 1000
    try:
        while not stop.is_set():
            try:
                if await lease.acquire_or_renew():
                    await keeper.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a failed round (Redis away, a permission error) must not end housekeeping
                metrics.HOUSEKEEPING_ERRORS.labels(step="round").inc()
                log.exception("housekeeping round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    finally:
        with contextlib.suppress(Exception):
            await lease.release()

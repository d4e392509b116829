"""Disk-pressure cleanup and retention on a real tree under tmp_path with a real Redis.

Free space comes from an injected probe: a disk of fixed capacity whose used space is what the
tree under DATA_ROOT occupies, so deleting really frees "disk" and the test controls the numbers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.libs.lease import Lease
from codex_broker.libs.logfiles import hourly_name
from codex_broker.libs.paths import job_dir, safe_name, session_dir
from codex_broker.orchestrator.housekeeping import Housekeeper, HousekeepingSettings, housekeeping_task
from codex_broker.orchestrator.housekeeping.candidates import disk_usage_of
from codex_broker.orchestrator.housekeeping.executor import deletable, execute_plan
from codex_broker.orchestrator.housekeeping.planner import plan_cleanup
from codex_broker.orchestrator.housekeeping.task import LEASE_NAME
from tests.helpers import wait_for

H_MS = 3_600_000
KB = 1024
SESSION_BYTES = 64 * KB
LOG_BYTES = 16 * KB


def now_ms() -> int:
    return int(time.time() * 1000)


def write_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def set_mtime(path: Path, at_ms: int) -> None:
    os.utime(path, (at_ms / 1000, at_ms / 1000))


class FakeDisk:
    """Free space = capacity - what DATA_ROOT occupies."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity

    def __call__(self, path: Path) -> int:
        return self.capacity - disk_usage_of(path)


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@dataclass
class Tree:
    root: Path
    old_logs: list[Path]
    current_log: Path


async def add_session(redis: Redis, keys: Keys, root: Path, key: str, idle_h: float) -> Path:
    last = now_ms() - int(idle_h * H_MS)
    await redis.zadd(keys.sessions_index, {key: last})
    await redis.hset(keys.session(key), mapping={"last_activity_ms": last, "platform": "slack"})
    await redis.hset(keys.session_state(key), mapping={"state": "idle"})
    directory = session_dir(root, key)
    write_file(directory / "workspace" / "big.bin", SESSION_BYTES)
    return directory


async def build_tree(redis: Redis, keys: Keys, root: Path) -> Tree:
    now = datetime.now(UTC)
    logs = root / "logs"
    old_logs = [
        logs / "orchestrator" / hourly_name(now - timedelta(hours=72)),
        logs / "sessions" / safe_name("slack:C:stuck") / hourly_name(now - timedelta(hours=30)),
        logs / "raw" / "codex-rpc" / hourly_name(now - timedelta(hours=26)),
    ]
    for path in old_logs:
        write_file(path, LOG_BYTES)
    current_log = logs / "orchestrator" / hourly_name(now)
    write_file(current_log, LOG_BYTES)

    await add_session(redis, keys, root, "slack:C:stuck", 100)  # stuck run: protection lapsed
    await add_session(redis, keys, root, "slack:C:old", 90)
    await add_session(redis, keys, root, "slack:C:mid", 60)
    await add_session(redis, keys, root, "slack:C:recent", 2)  # active today
    await add_session(redis, keys, root, "slack:C:run", 70)  # active turn for 30 h
    await add_session(redis, keys, root, "slack:C:queued", 30)  # inbound work waiting for 30 h
    await add_session(redis, keys, root, "slack:C:job", 80)  # running job, started 5 h ago

    stuck_start, run_start = now_ms() - 100 * H_MS, now_ms() - 30 * H_MS
    await redis.zadd(keys.active_runs, {"run-stuck": stuck_start, "run-live": run_start})
    await redis.hset(keys.run("run-stuck"), mapping={"session_key": "slack:C:stuck", "status": "running"})
    await redis.hset(
        keys.run("run-live"),
        mapping={"session_key": "slack:C:run", "status": "running", "created_at_ms": run_start},
    )
    await redis.rpush(keys.session_queue("slack:C:queued"), json.dumps({"event_id": "e1"}))
    await redis.zadd(keys.jobs_index, {"job-1": now_ms() - 5 * H_MS, "job-old": now_ms() - 95 * H_MS})
    await redis.hset(
        keys.job("job-1"),
        mapping={"session_key": "slack:C:job", "status": "running", "created_at_ms": now_ms() - 5 * H_MS},
    )
    await redis.hset(
        keys.job("job-old"),
        mapping={"session_key": "slack:C:old", "status": "completed", "created_at_ms": now_ms() - 95 * H_MS},
    )
    write_file(job_dir(root, "job-old") / "report.txt", 4 * KB)

    orphan = root / "sessions" / "gone-session-0123456789ab"
    write_file(orphan / "workspace" / "big.bin", SESSION_BYTES)
    for path in (orphan, orphan / "workspace"):
        set_mtime(path, now_ms() - 85 * H_MS)
    return Tree(root, old_logs, current_log)


def make_settings(root: Path, keys: Keys, **overrides: Any) -> HousekeepingSettings:
    values: dict[str, Any] = {
        "data_root": root,
        "key_prefix": keys.prefix,
        "shard_count": keys.shard_count,
        "instance_id": "hk-test",
        "disk_cleanup_enabled": True,
        "disk_cleanup_dry_run": False,
        "disk_cleanup_inactive_session_ms": 24 * H_MS,
        "disk_cleanup_job_protection_ms": 48 * H_MS,
        "disk_cleanup_old_log_ms": 24 * H_MS,
        "log_retention_hours": 0,
    }
    values.update(overrides)
    return HousekeepingSettings(**values)


def pressure(root: Path, *, free: int, target_extra: int) -> tuple[FakeDisk, dict[str, int]]:
    """A disk with `free` bytes free now; cleanup must free `target_extra` more."""
    disk = FakeDisk(disk_usage_of(root) + free)
    limits = {"disk_cleanup_min_free_bytes": free + 1, "disk_cleanup_target_free_bytes": free + target_extra}
    return disk, limits


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def admin_events(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = await redis.xrange(keys.admin_events_stream)
    return [json.loads(fields[b"data"]) for _, fields in entries]


async def test_cleanup_deletes_old_logs_then_oldest_unprotected_sessions(
    tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    tree = await build_tree(redis, keys, tmp_path)
    # logs (3 x 16 KB) + stuck + old (with its finished job's dir) + orphan; not mid
    need = 3 * LOG_BYTES + 3 * SESSION_BYTES + 4 * KB
    disk, limits = pressure(tmp_path, free=10 * KB, target_extra=need)
    keeper = Housekeeper(make_settings(tmp_path, keys, **limits), redis, probe=disk)
    runs_before = metric("cb_disk_cleanup_runs_total", {"mode": "delete"})
    bytes_before = metric("cb_disk_cleanup_bytes_total")

    report = await keeper.run_once()

    assert report is not None
    deleted = [i for i in report.outcome.items if i.status == "deleted"]
    order = [f"{i.decision.candidate.kind}:{i.decision.candidate.session_key or 'orphan'}" for i in deleted]
    assert order == ["log:orphan"] * 3 + ["session:slack:C:stuck", "session:slack:C:old", "session:orphan"]
    assert all(not p.exists() for p in tree.old_logs)
    assert tree.current_log.exists()
    for gone in ("slack:C:stuck", "slack:C:old"):
        assert not session_dir(tmp_path, gone).exists()
    assert not job_dir(tmp_path, "job-old").exists()
    assert not (tmp_path / "sessions" / "gone-session-0123456789ab").exists()
    for kept in ("slack:C:mid", "slack:C:recent", "slack:C:run", "slack:C:queued", "slack:C:job"):
        assert (session_dir(tmp_path, kept) / "workspace" / "big.bin").exists(), kept
    kept_keys = {i.decision.candidate.session_key for i in report.outcome.items if i.status == "kept"}
    assert kept_keys == {"slack:C:run", "slack:C:queued", "slack:C:job"}
    assert report.free_after >= limits["disk_cleanup_target_free_bytes"]

    assert metric("cb_disk_cleanup_runs_total", {"mode": "delete"}) == runs_before + 1
    assert metric("cb_disk_cleanup_bytes_total") - bytes_before == report.outcome.deleted_bytes > 0
    assert metric("cb_disk_free_bytes") == report.free_after
    (event,) = await admin_events(redis, keys)
    assert event["kind"] == "disk_cleanup" and event["mode"] == "delete"
    assert event["counts"]["deleted"] == 6 and event["counts"]["kept"] == 3
    assert event["deleted_bytes"] == report.outcome.deleted_bytes
    assert all(not item["paths"][0].startswith("/") for item in event["items"])
    timeline = await redis.lrange(keys.session_timeline("slack:C:old"), 0, -1)
    assert json.loads(timeline[0])["kind"] == "disk_cleanup"


async def test_dry_run_logs_every_candidate_and_deletes_nothing(
    tmp_path: Path, redis: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    await build_tree(redis, keys, tmp_path)
    disk, limits = pressure(tmp_path, free=0, target_extra=10**12)  # unreachable: everything listed
    settings = make_settings(tmp_path, keys, disk_cleanup_dry_run=True, **limits)
    before = snapshot(tmp_path)
    caplog.set_level(logging.INFO, logger="codex_broker.orchestrator.housekeeping")

    report = await Housekeeper(settings, redis, probe=disk).run_once()

    assert snapshot(tmp_path) == before
    assert report is not None and report.outcome.deleted_bytes == 0
    would = [i for i in report.outcome.items if i.status == "would_delete"]
    assert len(would) == 3 + 4  # 3 old logs; stuck, old, orphan, mid
    records = [r for r in caplog.records if getattr(r, "cleanup_status", None) == "would_delete"]
    assert len(records) == len(would)
    assert all(r.size_bytes > 0 and r.reason for r in records)  # type: ignore[attr-defined]
    (event,) = await admin_events(redis, keys)
    assert event["mode"] == "dry_run" and event["counts"]["would_delete"] == 7
    assert event["reaches_target"] is False and event["notes"]


async def test_no_cleanup_when_disabled_or_space_is_enough(tmp_path: Path, redis: Redis, keys: Keys) -> None:
    await build_tree(redis, keys, tmp_path)
    before = snapshot(tmp_path)
    disk, limits = pressure(tmp_path, free=0, target_extra=10**9)
    disabled = make_settings(tmp_path, keys, disk_cleanup_enabled=False, **limits)
    assert await Housekeeper(disabled, redis, probe=disk).run_once() is None
    assert metric("cb_disk_free_bytes") == disk(tmp_path)
    roomy = make_settings(tmp_path, keys, disk_cleanup_min_free_bytes=0, disk_cleanup_target_free_bytes=0)
    assert await Housekeeper(roomy, redis, probe=disk).run_once() is None
    assert snapshot(tmp_path) == before
    assert await admin_events(redis, keys) == []


async def test_session_active_again_after_planning_is_skipped(
    tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    await build_tree(redis, keys, tmp_path)
    disk, limits = pressure(tmp_path, free=0, target_extra=10**12)
    keeper = Housekeeper(make_settings(tmp_path, keys, **limits), redis, probe=disk)
    plan = plan_cleanup(0, await keeper.candidates(now_ms()), keeper.policy, now_ms())
    assert "slack:C:mid" in {d.candidate.session_key for d in plan.deletions}
    # a message arrives for "mid" between the plan and the deletion
    await redis.zadd(keys.sessions_index, {"slack:C:mid": now_ms()})
    await redis.hset(keys.session_state("slack:C:mid"), mapping={"state": "debouncing"})

    outcome = await execute_plan(plan, dry_run=False, data_root=tmp_path, recheck=keeper._recheck)

    (mid,) = [i for i in outcome.items if i.decision.candidate.session_key == "slack:C:mid"]
    assert mid.status == "skipped"
    assert session_dir(tmp_path, "slack:C:mid").exists()
    assert not session_dir(tmp_path, "slack:C:old").exists()


def test_deletable_only_inside_the_data_areas(tmp_path: Path) -> None:
    (tmp_path / "sessions" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "sessions" / "link").symlink_to(tmp_path / "outside")
    assert deletable(tmp_path / "sessions" / "a", tmp_path)
    assert not deletable(tmp_path / "sessions", tmp_path)
    assert not deletable(tmp_path / "sessions" / "link", tmp_path)
    assert not deletable(tmp_path / "outside", tmp_path)
    assert not deletable(tmp_path / "codex-home", tmp_path)


async def test_retention_removes_old_hourly_files_and_empty_log_dirs(
    tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    now = datetime.now(UTC)
    logs = tmp_path / "logs"
    old = [
        logs / "orchestrator" / hourly_name(now - timedelta(hours=30)),
        logs / "sessions" / "s-1" / hourly_name(now - timedelta(hours=25)),
        logs / "jobs" / "j-1" / hourly_name(now - timedelta(hours=48)),
        logs / "sessions" / "s-2" / "raw" / "codex-rpc" / hourly_name(now - timedelta(hours=40)),
    ]
    fresh = [
        logs / "orchestrator" / hourly_name(now - timedelta(hours=2)),
        logs / "sessions" / "s-2" / hourly_name(now),
    ]
    for path in old + fresh:
        write_file(path, 100)
    settings = make_settings(tmp_path, keys, log_retention_hours=24, disk_cleanup_enabled=False)
    files_before = metric("cb_log_retention_files_removed_total")

    removed = await Housekeeper(settings, redis, probe=FakeDisk(10**12), prune_idle_s=0).retention()

    assert {f.path for f in removed} == set(old)
    assert all(not p.exists() for p in old) and all(p.exists() for p in fresh)
    assert not (logs / "sessions" / "s-1").exists() and not (logs / "jobs" / "j-1").exists()
    assert not (logs / "sessions" / "s-2" / "raw").exists() and (logs / "sessions" / "s-2").is_dir()
    assert metric("cb_log_retention_files_removed_total") == files_before + 4
    (event,) = await admin_events(redis, keys)
    assert event["kind"] == "log_retention" and event["files"] == 4


async def test_lease_has_one_holder(redis: Redis, keys: Keys) -> None:
    first = Lease(redis, keys.lease(LEASE_NAME), "a", 60_000)
    second = Lease(redis, keys.lease(LEASE_NAME), "b", 60_000)
    assert await first.acquire_or_renew() and await first.acquire_or_renew()  # renewal
    assert not await second.acquire_or_renew()
    await second.release()  # not the holder: no effect
    assert not await second.acquire_or_renew()
    assert not await second.renew()
    await first.release()
    assert await second.acquire_or_renew()


async def test_task_runs_rounds_under_the_lease_and_releases_it_on_stop(
    tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    await build_tree(redis, keys, tmp_path)
    disk, limits = pressure(tmp_path, free=0, target_extra=10**12)
    settings = make_settings(
        tmp_path, keys, disk_cleanup_dry_run=True, disk_cleanup_check_interval_ms=1000, **limits
    )
    stop = asyncio.Event()
    task = asyncio.create_task(housekeeping_task(settings, redis, stop, probe=disk))

    async def two_rounds() -> bool:
        return len(await admin_events(redis, keys)) >= 2

    await wait_for(two_rounds, timeout_s=30, what="two housekeeping rounds")
    assert await redis.get(keys.lease(LEASE_NAME)) == b"hk-test"
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert await redis.get(keys.lease(LEASE_NAME)) is None


async def test_task_waits_while_another_replica_holds_the_lease(
    tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    await build_tree(redis, keys, tmp_path)
    disk, limits = pressure(tmp_path, free=0, target_extra=10**12)
    settings = make_settings(
        tmp_path, keys, disk_cleanup_dry_run=True, disk_cleanup_check_interval_ms=1000, **limits
    )
    await redis.set(keys.lease(LEASE_NAME), "other-replica", px=60_000)
    stop = asyncio.Event()
    task = asyncio.create_task(housekeeping_task(settings, redis, stop, probe=disk))
    for _ in range(3):  # let it try the lease a few times (bounded)
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert await admin_events(redis, keys) == []
    assert await redis.get(keys.lease(LEASE_NAME)) == b"other-replica"


async def test_stale_outbox_copies_are_pruned(tmp_path: Path, redis: Redis, keys: Keys) -> None:
    """Upload copies whose ingress answer never came do not pile up in DATA_ROOT/outbox."""
    outbox = tmp_path / "outbox"
    stale, fresh = outbox / "action-old", outbox / "action-new"
    write_file(stale / "report.pdf", 100)
    write_file(fresh / "image.png", 100)
    day_ago = datetime.now(UTC).timestamp() - 2 * 24 * 3600
    os.utime(stale, (day_ago, day_ago))
    settings = make_settings(tmp_path, keys, disk_cleanup_enabled=False)

    removed = await Housekeeper(settings, redis, probe=FakeDisk(10**12)).prune_outbox()

    assert removed == 1 and not stale.exists() and fresh.is_dir()

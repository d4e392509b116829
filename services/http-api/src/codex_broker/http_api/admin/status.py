"""The admin overview: services, sessions, runs, queues, jobs, dead letters and a log tail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.http_api.admin import logtail, sessions
from codex_broker.http_api.admin.sessions import decode_hash, text
from codex_broker.libs.heartbeat import read_heartbeats
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor

STATUS_SESSIONS = 20
ACTIVE_RUNS_READ = 200
JOBS_READ = 200
JOBS_LISTED = 50
LOG_LINES = 100
QUEUE_SESSIONS_SCANNED = 500
LOG_BYTES_PER_SERVICE = 32 * 1024
MAX_JOB_VALUE = 500
PLATFORMS = ("slack", "feishu", "discord")


async def services(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for beat in await read_heartbeats(redis, keys):
        at = beat.get("at")
        age = round(now - at, 1) if isinstance(at, int | float) else None
        rows.append({**beat, "age_s": age})
    return rows


async def active_runs(redis: Redis, keys: Keys, platform: str | None) -> list[dict[str, Any]]:
    listed: list[Any] = await redis.zrange(keys.active_runs, 0, ACTIVE_RUNS_READ - 1, withscores=True)
    if not listed:
        return []
    pipe = redis.pipeline(transaction=False)
    for run_id, _ in listed:
        pipe.hgetall(keys.run(text(run_id)))
    rows = []
    for (run_id, score), raw in zip(listed, await pipe.execute(), strict=True):
        run = decode_hash(raw)
        session_key = run.get("session_key", "")
        if platform and not session_key.startswith(f"{platform}:"):
            continue
        rows.append(
            {
                "run_id": text(run_id),
                "started_at_ms": int(score),
                "session_key": session_key or None,
                "runner_id": run.get("runner_id") or None,
                "status": run.get("status") or None,
            }
        )
    return rows


def stream_names(keys: Keys, platform: str | None, runner_ids: list[str]) -> list[str]:
    outbound = [platform] if platform else list(PLATFORMS)
    return [
        *[keys.inbound_stream(s) for s in range(keys.shard_count)],
        *[keys.job_callback_stream(s) for s in range(keys.shard_count)],
        keys.runs_stream,
        *[keys.run_events_stream(s) for s in range(keys.shard_count)],
        *[keys.outbound_stream(p) for p in outbound],
        *[keys.runner_control_stream(r) for r in runner_ids],
        keys.dead_letter_stream,
        keys.admin_events_stream,
    ]


def _group_row(group: dict[Any, Any]) -> dict[str, Any]:
    lag = group.get("lag")
    return {
        "name": text(group.get("name", "")),
        "consumers": int(group.get("consumers") or 0),
        "pending": int(group.get("pending") or 0),
        "lag": int(lag) if lag is not None else None,
    }


async def stream_depths(redis: Redis, names: list[str]) -> list[dict[str, Any]]:
    """Length of each stream plus pending and lag per consumer group (missing streams: length 0)."""
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.xlen(name)
    lengths = await pipe.execute()
    existing = [name for name, length in zip(names, lengths, strict=True) if length]
    groups: dict[str, list[Any]] = {}
    if existing:
        pipe = redis.pipeline(transaction=False)
        for name in existing:
            pipe.xinfo_groups(name)
        for name, info in zip(existing, await pipe.execute(raise_on_error=False), strict=True):
            groups[name] = info if isinstance(info, list) else []
    return [
        {"stream": name, "length": int(length), "groups": [_group_row(g) for g in groups.get(name, [])]}
        for name, length in zip(names, lengths, strict=True)
    ]


async def session_queue_depths(redis: Redis, keys: Keys, platform: str | None) -> list[dict[str, Any]]:
    """Non-empty pending-input queues among the most recently active sessions."""
    _, scanned = await sessions.page_keys(redis, keys, platform, 0, QUEUE_SESSIONS_SCANNED)
    if not scanned:
        return []
    pipe = redis.pipeline(transaction=False)
    for sk in scanned:
        pipe.llen(keys.session_queue(sk))
    lengths = await pipe.execute()
    return [{"session_key": sk, "length": int(n)} for sk, n in zip(scanned, lengths, strict=True) if n]


def _job_row(job_id: str, job: dict[str, str], redactor: Redactor) -> dict[str, Any]:
    cut = {k: (v if len(v) <= MAX_JOB_VALUE else v[:MAX_JOB_VALUE] + "…") for k, v in job.items()}
    return {"job_id": job_id, **redactor.value(cut)}


def job_platform(job: dict[str, str]) -> str:
    return job.get("platform") or sessions.platform_of(job.get("session_key", ""))


async def jobs(redis: Redis, keys: Keys, platform: str | None, redactor: Redactor) -> dict[str, Any]:
    total = await redis.zcard(keys.jobs_index)
    ids = [text(j) for j in await redis.zrevrange(keys.jobs_index, 0, JOBS_READ - 1)]
    if not ids:
        return {"count": int(total), "items": []}
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.job(job_id))
    rows = []
    for job_id, raw in zip(ids, await pipe.execute(), strict=True):
        job = decode_hash(raw)
        if platform and job_platform(job) != platform:
            continue
        rows.append(_job_row(job_id, job, redactor))
    return {"count": int(total) if platform is None else len(rows), "items": rows[:JOBS_LISTED]}


async def overview(
    redis: Redis, keys: Keys, data_root: Path, redactor: Redactor, platform: str | None
) -> dict[str, Any]:
    beats = await services(redis, keys)
    runner_ids = [str(b.get("instance")) for b in beats if b.get("service") == "codex-runner"]
    total, page = await sessions.page_keys(redis, keys, platform, 0, STATUS_SESSIONS)
    session_rows = await sessions.summaries(redis, keys, page, data_root)
    streams = await stream_depths(redis, stream_names(keys, platform, runner_ids))
    logs = await asyncio.to_thread(
        logtail.recent_logs,
        Path(data_root) / "logs",
        redactor,
        max_bytes_per_service=LOG_BYTES_PER_SERVICE,
        max_lines=LOG_LINES,
    )
    runs = await active_runs(redis, keys, platform)
    dead = next((s["length"] for s in streams if s["stream"] == keys.dead_letter_stream), 0)
    return {
        "ok": True,
        "platform": platform,
        "generated_at_ms": int(time.time() * 1000),
        "services": beats,
        "sessions": {"count": total, "items": session_rows},
        "active_runs": {"count": len(runs), "items": runs},
        "queues": {
            "streams": streams,
            "sessions": await session_queue_depths(redis, keys, platform),
        },
        "jobs": await jobs(redis, keys, platform, redactor),
        "dead_letter": {"count": dead},
        "logs": logs,
    }

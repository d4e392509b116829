"""What the broker is doing, for `codex-broker status` (and anything else that reports on it): active
runs, sessions waiting for a run slot, running jobs, dead letters by reason, the last errors per
service, and the release mix. In libs because the CLI may not import a service.

Redis reads are bounded (a few hundred entries of each index) and pipelined; the pure parts
(`age_s`, `dead_letter_reason`, `mixed_versions`) are tested on their own.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.heartbeat import mixed_versions, versions
from codex_broker.libs.keys import Keys
from codex_broker.libs.logfiles import tail_recent
from codex_broker.libs.logs import Redactor
from codex_broker.libs.logtail import parse_records, service_dirs

RUNS_READ = 200
WAITING_READ = 200
JOBS_READ = 500
QUEUE_SESSIONS_READ = 500
DEAD_LETTERS_READ = 1000
ERRORS_PER_SERVICE = 3
LOG_BYTES_PER_SERVICE = 64 * 1024
ERROR_LEVELS = ("ERROR", "CRITICAL")
_VARIABLE = re.compile(r"[0-9a-f]{8,}|\d+")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def age_s(since_ms: str | float | None, now_s: float) -> float | None:
    if not since_ms:
        return None
    return round(max(0.0, now_s - float(since_ms) / 1000), 1)


def dead_letter_reason(reason: str) -> str:
    """A reason's kind, to count by: its first clause with ids and numbers masked."""
    head = re.split(r"[:(\n]", reason.strip(), maxsplit=1)[0].strip() or "unknown"
    return _VARIABLE.sub("N", head)[:80]


async def active_runs(redis: Redis, keys: Keys, now_s: float) -> list[dict[str, Any]]:
    listed: list[Any] = await redis.zrange(keys.active_runs, 0, RUNS_READ - 1, withscores=True)
    pipe = redis.pipeline(transaction=False)
    for run_id, _ in listed:
        pipe.hmget(keys.run(_text(run_id)), ["session_key", "runner_id", "status", "started_at_ms"])
    rows = []
    for (run_id, score), (session, runner, status, started) in zip(listed, await pipe.execute(), strict=True):
        rows.append(
            {
                "run_id": _text(run_id),
                "session_key": _text(session) if session else None,
                "runner_id": _text(runner) if runner else None,
                "status": _text(status) if status else None,
                "age_s": age_s(_text(started) if started else score, now_s),
            }
        )
    return rows


async def queued_sessions(redis: Redis, keys: Keys, now_s: float) -> list[dict[str, Any]]:
    """Sessions waiting for a run slot (MAX_ACTIVE_RUNS reached), oldest first, with their
    queued messages."""
    listed: list[Any] = await redis.zrange(keys.runs_waiting, 0, WAITING_READ - 1, withscores=True)
    pipe = redis.pipeline(transaction=False)
    for session_key, _ in listed:
        pipe.llen(keys.session_queue(_text(session_key)))
    return [
        {"session_key": _text(sk), "waiting_s": age_s(score, now_s), "messages": int(n)}
        for (sk, score), n in zip(listed, await pipe.execute(), strict=True)
    ]


async def queued_input(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Sessions holding messages for their next turn (sent during a run, or while debouncing),
    among the QUEUE_SESSIONS_READ most recently active ones."""
    recent = [_text(sk) for sk in await redis.zrevrange(keys.sessions_index, 0, QUEUE_SESSIONS_READ - 1)]
    pipe = redis.pipeline(transaction=False)
    for session_key in recent:
        pipe.llen(keys.session_queue(session_key))
    lengths = await pipe.execute()
    return [{"session_key": sk, "messages": int(n)} for sk, n in zip(recent, lengths, strict=True) if n]


async def running_jobs(redis: Redis, keys: Keys, now_s: float) -> list[dict[str, Any]]:
    ids = [_text(j) for j in await redis.zrevrange(keys.jobs_index, 0, JOBS_READ - 1)]
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), ["status", "session_key", "started_at_ms", "worker"])
    rows = []
    for job_id, (status, session, started, worker) in zip(ids, await pipe.execute(), strict=True):
        if _text(status or b"") != "running":
            continue
        rows.append(
            {
                "job_id": job_id,
                "session_key": _text(session) if session else None,
                "worker": _text(worker) if worker else None,
                "age_s": age_s(_text(started) if started else None, now_s),
            }
        )
    return rows


async def dead_letters_by_reason(redis: Redis, keys: Keys) -> dict[str, int]:
    """Counts over the newest DEAD_LETTERS_READ dead letters, by reason kind."""
    entries: Any = await redis.xrevrange(keys.dead_letter_stream, count=DEAD_LETTERS_READ)
    counted = Counter(
        dead_letter_reason(_hash(fields or {}).get("reason", "")) for _, fields in entries or []
    )
    return dict(counted.most_common())


def last_errors(logs_root: Path, redactor: Redactor) -> dict[str, list[dict[str, Any]]]:
    """The newest ERROR records of each service's own log (DATA_ROOT/logs/<service>/)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for directory in service_dirs(logs_root):
        lines = tail_recent(directory, LOG_BYTES_PER_SERVICE, 2000, max_files=2)
        records = parse_records(lines, redactor, service=directory.name)
        errors = [r for r in records if str(r.get("level", "")).upper() in ERROR_LEVELS]
        if errors:
            found[directory.name] = [
                {"ts": r.get("ts"), "msg": r.get("msg"), "error": r.get("error") or _last_line(r.get("exc"))}
                for r in errors[-ERRORS_PER_SERVICE:]
            ]
    return found


def _last_line(text: Any) -> str | None:
    return str(text).strip().splitlines()[-1] if text else None


async def collect(
    redis: Redis, keys: Keys, heartbeats: list[dict[str, Any]], data_root: Path | None, now_s: float
) -> dict[str, Any]:
    logs = data_root / "logs" if data_root is not None else None
    return {
        "versions": versions(heartbeats),
        "mixed_versions": mixed_versions(heartbeats) is not None,
        "active_runs": await active_runs(redis, keys, now_s),
        "queued_sessions": await queued_sessions(redis, keys, now_s),
        "queued_input": await queued_input(redis, keys),
        "running_jobs": await running_jobs(redis, keys, now_s),
        "dead_letters_by_reason": await dead_letters_by_reason(redis, keys),
        "last_errors": await asyncio.to_thread(last_errors, logs, Redactor()) if logs else {},
    }

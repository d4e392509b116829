"""Gathers disk-cleanup candidates: old log files from the disk, inactive sessions from Redis with
what protects them, and session directories no session owns any more."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.libs.logfiles import iter_log_files, logs_root
from codex_broker.libs.paths import job_dir, safe_name, session_dir
from codex_broker.orchestrator.housekeeping.planner import (
    PROTECTION_ACTIVE_RUN,
    PROTECTION_PENDING_INBOUND,
    PROTECTION_RUNNING_JOB,
    Candidate,
    Protection,
)

TERMINAL_RUN_STATUSES = {"completed", "interrupted", "failed", "cancelled", "canceled"}
# Queued jobs will run in the session workspace soon; they protect it like running ones.
LIVE_JOB_STATUSES = {"running", "queued", "started", "pending"}
IDLE_STATES = {"", "idle"}
BATCH = 500


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_hash(raw: dict[Any, Any] | None) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (raw or {}).items()}


def to_ms(value: str | float | int | None) -> int | None:
    """Timestamps in hashes are ms by convention; tolerate seconds (and ISO-free floats)."""
    if value in (None, ""):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except ValueError:
        return None
    return int(number * 1000) if number < 100_000_000_000 else int(number)


def _first_ms(fields: dict[str, str], *names: str) -> int | None:
    for name in names:
        if (ms := to_ms(fields.get(name))) is not None:
            return ms
    return None


# ---- filesystem -------------------------------------------------------------------------------


def disk_usage_of(path: Path) -> int:
    """Bytes a file or tree occupies on disk (allocated blocks; hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(p: str) -> None:
        nonlocal total
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        if st.st_nlink > 1 and not os.path.isdir(p):
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
        blocks = getattr(st, "st_blocks", None)
        total += blocks * 512 if blocks is not None else st.st_size

    add(str(path))
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in dirnames + filenames:
                add(os.path.join(dirpath, name))
    return total


def newest_mtime_ms(path: Path) -> int:
    """Latest mtime of a directory and its direct children: a cheap 'last touched'."""
    latest = 0.0
    for p in [path, *_children(path)]:
        try:
            latest = max(latest, p.lstat().st_mtime)
        except FileNotFoundError:
            continue
    return int(latest * 1000)


def _children(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def log_candidates(data_root: Path, older_than_ms: int) -> list[Candidate]:
    """Log files whose last possible write is before `older_than_ms` (epoch ms)."""
    found = []
    for log_file in iter_log_files(logs_root(data_root)):
        last_ms = int(log_file.last_write.timestamp() * 1000)
        if last_ms < older_than_ms:
            found.append(Candidate("log", (log_file.path,), log_file.size, last_ms))
    return found


# ---- Redis: what protects a session -----------------------------------------------------------


@dataclass
class SessionGuards:
    """Protections per session key, and the job ids each session owns."""

    protections: dict[str, list[Protection]] = field(default_factory=lambda: defaultdict(list))
    jobs: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


async def _hgetall_many(redis: Redis, names: list[str]) -> list[dict[str, str]]:
    results: list[dict[str, str]] = []
    for start in range(0, len(names), BATCH):
        pipe = redis.pipeline(transaction=False)
        for name in names[start : start + BATCH]:
            pipe.hgetall(name)
        results.extend(_decode_hash(raw) for raw in await pipe.execute())
    return results


async def _scored(redis: Redis, key: str) -> list[tuple[str, int]]:
    """Every member of a sorted set with its score (ms timestamps here)."""
    entries: list[Any] = await redis.zrange(key, 0, -1, withscores=True)
    return [(_text(member), int(score)) for member, score in entries]


async def load_guards(redis: Redis, keys: Keys, only: set[str] | None = None) -> SessionGuards:
    """Active runs and live jobs, grouped by session (restricted to `only` when given)."""
    guards = SessionGuards()
    runs = await _scored(redis, keys.active_runs)
    run_ids = [run_id for run_id, _ in runs]
    for (_, score), fields, run_id in zip(
        runs, await _hgetall_many(redis, [keys.run(r) for r in run_ids]), run_ids, strict=True
    ):
        session_key = fields.get("session_key")
        if not session_key or fields.get("status") in TERMINAL_RUN_STATUSES:
            continue
        if only is not None and session_key not in only:
            continue
        since = _first_ms(fields, "started_at_ms", "created_at_ms") or int(score)
        guards.protections[session_key].append(Protection(PROTECTION_ACTIVE_RUN, since, run_id))

    job_ids = [_text(j) for j in await redis.zrange(keys.jobs_index, 0, -1)]
    for job_id, fields in zip(
        job_ids, await _hgetall_many(redis, [keys.job(j) for j in job_ids]), strict=True
    ):
        session_key = fields.get("session_key")
        if not session_key or (only is not None and session_key not in only):
            continue
        guards.jobs[session_key].append(job_id)
        if fields.get("status") in LIVE_JOB_STATUSES:
            since = _first_ms(fields, "started_at_ms", "created_at_ms", "started_at", "created_at") or 0
            guards.protections[session_key].append(Protection(PROTECTION_RUNNING_JOB, since, job_id))
    return guards


@dataclass(frozen=True)
class SessionState:
    session_key: str
    last_activity_ms: int
    pending: Protection | None


async def load_session_states(redis: Redis, keys: Keys, entries: list[tuple[str, int]]) -> list[SessionState]:
    """Last activity and pending inbound work of sessions given as (key, index score)."""
    states: list[SessionState] = []
    for start in range(0, len(entries), BATCH):
        chunk = entries[start : start + BATCH]
        pipe = redis.pipeline(transaction=False)
        for session_key, _ in chunk:
            pipe.hget(keys.session(session_key), "last_activity_ms")
            pipe.hget(keys.session_state(session_key), "state")
            pipe.llen(keys.session_queue(session_key))
        replies = await pipe.execute()
        for i, (session_key, score) in enumerate(chunk):
            last_field, state, queued = replies[3 * i : 3 * i + 3]
            last = max(score, to_ms(_text(last_field)) or 0)
            busy = _text(state) not in IDLE_STATES or int(queued or 0) > 0
            detail = f"state={_text(state) or 'idle'} queued={int(queued or 0)}"
            pending = Protection(PROTECTION_PENDING_INBOUND, last, detail) if busy else None
            states.append(SessionState(session_key, last, pending))
    return states


# ---- assembling candidates --------------------------------------------------------------------


async def session_candidates(
    redis: Redis, keys: Keys, data_root: Path, inactive_before_ms: int
) -> list[Candidate]:
    """Sessions last active before `inactive_before_ms` with something on disk, plus orphan dirs."""
    index = await _scored(redis, keys.sessions_index)
    old = [(k, s) for k, s in index if s < inactive_before_ms]
    states = [
        s for s in await load_session_states(redis, keys, old) if s.last_activity_ms < inactive_before_ms
    ]
    guards = await load_guards(redis, keys, only={s.session_key for s in states})
    known_dirs = {safe_name(k) for k, _ in index}

    def build() -> list[Candidate]:
        found = [c for s in states if (c := _session_candidate(data_root, s, guards)) is not None]
        found.extend(_orphan_candidates(data_root, known_dirs, inactive_before_ms))
        return found

    return await asyncio.to_thread(build)


def _session_candidate(data_root: Path, state: SessionState, guards: SessionGuards) -> Candidate | None:
    protections = list(guards.protections.get(state.session_key, []))
    if state.pending is not None:
        protections.append(state.pending)
    paths = [session_dir(data_root, state.session_key)]
    paths += [job_dir(data_root, job_id) for job_id in guards.jobs.get(state.session_key, [])]
    existing = tuple(p for p in paths if p.exists())
    if not existing:
        return None
    size = sum(disk_usage_of(p) for p in existing)
    return Candidate("session", existing, size, state.last_activity_ms, state.session_key, tuple(protections))


def _orphan_candidates(data_root: Path, known_dirs: set[str], inactive_before_ms: int) -> Iterable[Candidate]:
    for path in _children(Path(data_root) / "sessions"):
        if path.name in known_dirs or path.is_symlink() or not path.is_dir():
            continue
        last = newest_mtime_ms(path)
        if last < inactive_before_ms:
            yield Candidate("session", (path,), disk_usage_of(path), last)


async def refresh_session(redis: Redis, keys: Keys, candidate: Candidate) -> Candidate:
    """The same candidate with its activity and protections read again (just before deleting)."""
    if candidate.session_key is None:
        return candidate
    score = await redis.zscore(keys.sessions_index, candidate.session_key)
    (state,) = await load_session_states(redis, keys, [(candidate.session_key, int(score or 0))])
    guards = await load_guards(redis, keys, only={candidate.session_key})
    protections = list(guards.protections.get(candidate.session_key, []))
    if state.pending is not None:
        protections.append(state.pending)
    return Candidate(
        candidate.kind,
        candidate.paths,
        candidate.size_bytes,
        max(state.last_activity_ms, candidate.last_activity_ms if score is None else 0),
        candidate.session_key,
        tuple(protections),
    )

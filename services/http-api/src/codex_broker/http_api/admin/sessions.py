"""Admin views and operations on sessions (the orchestrator owns them; the admin reads, resets, deletes)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.http_api.admin import authors
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor
from codex_broker.libs.paths import is_within, session_dir
from codex_broker.libs.records import TurnState

log = logging.getLogger(__name__)

TIMELINE_READ = 200
TIMELINE_CAP = 500
SCAN_CHUNK = 500
BUSY_STATES = frozenset({"running", "debouncing"})
_INT_FIELDS = ("created_at_ms", "last_activity_ms", "input_tokens", "output_tokens", "total_tokens")


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def display_path(path: str | None, data_root: Path) -> str | None:
    """Paths relative to DATA_ROOT: the admin view has no use for host paths."""
    if not path:
        return None
    try:
        return str(Path(path).relative_to(data_root))
    except ValueError:
        return Path(path).name


def platform_of(session_key: str) -> str:
    return session_key.split(":", 1)[0]


def summarize(
    session_key: str, session: dict[str, str], state: dict[str, str], queue_length: int, data_root: Path
) -> dict[str, Any]:
    """The list/overview view of one session (pure)."""
    turn = TurnState.from_hash(state)
    row: dict[str, Any] = {
        "session_key": session_key,
        "platform": session.get("platform") or platform_of(session_key),
        "conversation_id": session.get("conversation_id"),
        "root_message_id": session.get("root_message_id"),
        "thread_id": session.get("thread_id") or None,
        "auth_profile": session.get("auth_profile") or None,
        "workspace": display_path(session.get("workspace"), data_root),
        "status": session.get("status"),
        "state": turn.state,
        "active_run_id": turn.active_run_id or None,
        "queue_length": queue_length,
    }
    for name in _INT_FIELDS:
        row[name] = _int(session.get(name))
    return row


def parse_timeline_entry(raw: Any, redactor: Redactor) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError, TypeError):
        entry = None
    if not isinstance(entry, dict):
        entry = {"kind": "unknown", "summary": text(raw)[:500]}
    return redactor.value(entry)  # type: ignore[no-any-return]


def timeline_entry(kind: str, summary: str) -> str:
    return json.dumps({"at_ms": int(time.time() * 1000), "kind": kind, "summary": summary})


# ---- reading ------------------------------------------------------------------------------------


async def page_keys(
    redis: Redis, keys: Keys, platform: str | None, offset: int, limit: int
) -> tuple[int, list[str]]:
    """(total, session keys of the page) by last activity, newest first, optionally one platform."""
    if platform is None:
        total = await redis.zcard(keys.sessions_index)
        page = await redis.zrevrange(keys.sessions_index, offset, offset + limit - 1)
        return int(total), [text(sk) for sk in page]
    prefix = f"{platform}:"
    matched: list[str] = []
    total = 0
    start = 0
    while True:
        chunk = [text(sk) for sk in await redis.zrevrange(keys.sessions_index, start, start + SCAN_CHUNK - 1)]
        for sk in chunk:
            if sk.startswith(prefix):
                if offset <= total < offset + limit:
                    matched.append(sk)
                total += 1
        if len(chunk) < SCAN_CHUNK:
            return total, matched
        start += SCAN_CHUNK


async def summaries(
    redis: Redis, keys: Keys, session_keys: list[str], data_root: Path
) -> list[dict[str, Any]]:
    if not session_keys:
        return []
    pipe = redis.pipeline(transaction=False)
    for sk in session_keys:
        pipe.hgetall(keys.session(sk))
        pipe.hgetall(keys.session_state(sk))
        pipe.llen(keys.session_queue(sk))
    results = await pipe.execute()
    rows = []
    for i, sk in enumerate(session_keys):
        session, state, queue_length = results[3 * i : 3 * i + 3]
        rows.append(summarize(sk, decode_hash(session), decode_hash(state), int(queue_length), data_root))
    return rows


async def exists(redis: Redis, keys: Keys, session_key: str) -> bool:
    if await redis.exists(keys.session(session_key)):
        return True
    return await redis.zscore(keys.sessions_index, session_key) is not None


async def detail(
    redis: Redis, keys: Keys, session_key: str, data_root: Path, redactor: Redactor
) -> dict[str, Any]:
    if not await exists(redis, keys, session_key):
        raise ApiError(404, "unknown_session")
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.session(session_key))
    pipe.hgetall(keys.session_state(session_key))
    pipe.llen(keys.session_queue(session_key))
    pipe.hgetall(keys.session_participants(session_key))
    pipe.lrange(keys.session_timeline(session_key), 0, TIMELINE_READ - 1)
    session, state, queue_length, participants_raw, timeline_raw = await pipe.execute()
    summary = summarize(session_key, decode_hash(session), decode_hash(state), int(queue_length), data_root)
    participants = decode_hash(participants_raw)
    mapped = await authors.authors_for(redis, keys, summary["platform"], sorted(participants))
    return {
        **summary,
        "participants": [
            {
                "userId": user,
                "displayName": name,
                "githubAuthor": (
                    {"name": mapped[user].name, "email": mapped[user].email, "source": mapped[user].source}
                    if user in mapped
                    else None
                ),
            }
            for user, name in sorted(participants.items())
        ],
        "timeline": [parse_timeline_entry(raw, redactor) for raw in timeline_raw],
    }


# ---- operations ---------------------------------------------------------------------------------


async def reset(redis: Redis, keys: Keys, session_key: str) -> str | None:
    """Forget the Codex thread so the next turn starts a fresh one; everything else stays."""
    if not await exists(redis, keys, session_key):
        raise ApiError(404, "unknown_session")
    pipe = redis.pipeline(transaction=True)
    pipe.hget(keys.session(session_key), "thread_id")
    pipe.hdel(keys.session(session_key), "thread_id")
    pipe.lpush(keys.session_timeline(session_key), timeline_entry("admin", "thread reset by admin"))
    pipe.ltrim(keys.session_timeline(session_key), 0, TIMELINE_CAP - 1)
    previous, *_ = await pipe.execute()
    log.info("admin reset session thread", extra={"session_key": session_key})
    return text(previous) if previous else None


DEFAULT_PROFILE = "default"  # DATA_ROOT/codex-home: always there, with or without metadata


async def move_profile(redis: Redis, keys: Keys, session_key: str, profile: str) -> str | None:
    """Move one session to another auth profile (new sessions take the active one; existing
    ones keep theirs until moved). A Codex thread's rollout lives in its profile's CODEX_HOME,
    so the next turn starts a fresh Codex thread there: the thread id is dropped and the epoch
    bumped (a turn still running does not write its thread back). Returns the previous one."""
    if profile != DEFAULT_PROFILE and not await redis.hexists(keys.auth_profiles, profile):  # type: ignore[misc]
        raise ApiError(404, "unknown_profile", field="profile")
    if not await exists(redis, keys, session_key):
        raise ApiError(404, "unknown_session")
    session = keys.session(session_key)
    pipe = redis.pipeline(transaction=True)
    pipe.hget(session, "auth_profile")
    pipe.hset(session, "auth_profile", profile)
    pipe.hdel(session, "thread_id")
    pipe.hincrby(session, "epoch", 1)
    pipe.lpush(
        keys.session_timeline(session_key), timeline_entry("admin", f"moved to auth profile {profile}")
    )
    pipe.ltrim(keys.session_timeline(session_key), 0, TIMELINE_CAP - 1)
    previous, *_ = await pipe.execute()
    return text(previous) if previous else None


@dataclass(frozen=True)
class Deleted:
    keys_removed: int
    directories: list[str]


def session_keys_of(keys: Keys, session_key: str) -> list[str]:
    """Every per-session key (one hash tag, so one transaction can remove them)."""
    return [
        keys.session(session_key),
        keys.session_state(session_key),
        keys.session_queue(session_key),
        keys.session_participants(session_key),
        keys.session_timeline(session_key),
        keys.session_token_hash(session_key),
    ]


def is_busy(state: dict[str, str], active_run_listed: bool) -> bool:
    return state.get("state") in BUSY_STATES or active_run_listed


async def delete(redis: Redis, keys: Keys, session_key: str, data_root: Path) -> Deleted:
    """Remove the session's keys and workspace; refused (409) while a turn is active or starting.

    WATCH on the state hash makes the check and the delete one step against the orchestrator
    starting a turn in between.
    """
    if not await exists(redis, keys, session_key):
        raise ApiError(404, "unknown_session")
    state_key = keys.session_state(session_key)
    async with redis.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(state_key)
            state = decode_hash(await pipe.hgetall(state_key))
            run_id = state.get("active_run_id") or ""
            listed = bool(run_id) and await pipe.zscore(keys.active_runs, run_id) is not None
            if is_busy(state, listed):
                raise ApiError(409, "session_active")
            workspace = await pipe.hget(keys.session(session_key), "workspace")
            token_hash = await pipe.get(keys.session_token_hash(session_key))
            pipe.multi()
            pipe.delete(*session_keys_of(keys, session_key))
            (removed,) = await pipe.execute()
        except redis_errors.WatchError:
            raise ApiError(409, "session_active") from None
    cleanup = redis.pipeline(transaction=False)
    cleanup.zrem(keys.sessions_index, session_key)
    if token_hash:
        cleanup.delete(keys.session_by_token(text(token_hash)))
    await cleanup.execute()
    candidates = [session_dir(data_root, session_key)]
    if workspace:
        candidates.append(Path(text(workspace)))
    directories = await asyncio.to_thread(remove_session_dirs, data_root, candidates)
    log.info("admin deleted session", extra={"session_key": session_key, "directories": directories})
    return Deleted(keys_removed=int(removed), directories=directories)


def remove_session_dirs(data_root: Path, candidates: list[Path]) -> list[str]:
    """Remove each candidate that lies strictly inside DATA_ROOT/sessions; returns what went.

    A symlink is removed as a link, never followed; anything resolving outside the sessions root
    (or the root itself) is left alone.
    """
    root = (Path(data_root) / "sessions").resolve()
    removed: list[str] = []
    for path in candidates:
        if path.is_symlink():
            if path.parent.resolve() == root or is_within(path.parent, root):
                path.unlink()
                removed.append(display_path(str(path), Path(data_root)) or path.name)
            continue
        if not path.is_dir():
            continue
        resolved = path.resolve()
        if resolved == root or not is_within(resolved, root):
            continue
        shutil.rmtree(resolved, ignore_errors=True)
        removed.append(display_path(str(path), Path(data_root)) or path.name)
    return removed

"""Codex auth profiles: the secret lives on disk (0600, in the profile's CODEX_HOME), metadata in Redis.

A profile is a CODEX_HOME (`libs.paths.codex_home(data_root, name)`) whose `auth.json` the runner
hands to Codex. An API-key profile gets the same auth.json `codex login --with-api-key` writes,
so the runner needs no second code path. Nothing secret is stored in Redis or returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.http_api.errors import ApiError
from codex_broker.libs.codex_account import AccountFacts, read_account
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import codex_home

AUTH_FILE = "auth.json"
SESSIONS_SCANNED = 1000
SESSIONS_LISTED = 50


def auth_path(data_root: Path, name: str) -> Path:
    return codex_home(data_root, name) / AUTH_FILE


def api_key_document(key: str) -> dict[str, Any]:
    return {"auth_mode": "apikey", "OPENAI_API_KEY": key}


def write_private_file(path: Path, content: bytes) -> None:
    """Write atomically with mode 0600 from the first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # the umask cannot widen it, but be explicit
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _meta(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def save(
    redis: Redis, keys: Keys, data_root: Path, name: str, document: dict[str, Any], kind: str
) -> dict[str, Any]:
    """Store (or replace) a profile's auth.json and its metadata; returns the public view."""
    content = json.dumps(document, indent=2).encode()
    await asyncio.to_thread(write_private_file, auth_path(data_root, name), content)
    now_ms = int(time.time() * 1000)
    previous = _meta(await redis.hget(keys.auth_profiles, name))  # type: ignore[misc]
    meta = {"kind": kind, "created_at_ms": previous.get("created_at_ms", now_ms), "updated_at_ms": now_ms}
    await redis.hset(keys.auth_profiles, name, json.dumps(meta))  # type: ignore[misc]
    return {"name": name, **meta}


async def activate(redis: Redis, keys: Keys, name: str) -> None:
    if not await redis.hexists(keys.auth_profiles, name):  # type: ignore[misc]
        raise ApiError(404, "unknown_profile", field="name")
    await redis.set(keys.active_auth_profile, name)


async def delete(redis: Redis, keys: Keys, data_root: Path, name: str) -> None:
    """Remove the credential and the metadata; the rest of the CODEX_HOME (thread rollouts that
    sessions may still resume) stays."""
    if not await redis.hexists(keys.auth_profiles, name):  # type: ignore[misc]
        raise ApiError(404, "unknown_profile", field="name")
    active = await redis.get(keys.active_auth_profile)
    if active is not None and _text(active) == name:
        raise ApiError(409, "profile_active", field="name")
    await asyncio.to_thread(_unlink_quietly, auth_path(data_root, name))
    await redis.hdel(keys.auth_profiles, name)  # type: ignore[misc]


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def sessions_by_profile(redis: Redis, keys: Keys) -> dict[str, list[str]]:
    """Profile name → session keys using it, among the most recently active sessions."""
    listed: list[Any] = await redis.zrevrange(keys.sessions_index, 0, SESSIONS_SCANNED - 1)
    session_keys = [_text(sk) for sk in listed]
    if not session_keys:
        return {}
    pipe = redis.pipeline(transaction=False)
    for sk in session_keys:
        pipe.hget(keys.session(sk), "auth_profile")
    used: dict[str, list[str]] = {}
    for sk, profile in zip(session_keys, await pipe.execute(), strict=True):
        if profile:
            used.setdefault(_text(profile), []).append(sk)
    return used


async def list_profiles(redis: Redis, keys: Keys, data_root: Path) -> dict[str, Any]:
    raw: dict[Any, Any] = await redis.hgetall(keys.auth_profiles)  # type: ignore[misc]
    active_raw = await redis.get(keys.active_auth_profile)
    active = _text(active_raw) if active_raw is not None else None
    used = await sessions_by_profile(redis, keys)
    rows = []
    for name_raw, value in raw.items():
        name = _text(name_raw)
        meta = _meta(value)
        sessions = used.get(name, [])
        rows.append(
            {
                "name": name,
                "kind": meta.get("kind", "unknown"),
                "created_at_ms": meta.get("created_at_ms"),
                "updated_at_ms": meta.get("updated_at_ms"),
                "active": name == active,
                "has_credentials": auth_path(data_root, name).is_file(),
                "session_count": len(sessions),
                "sessions": sessions[:SESSIONS_LISTED],
            }
        )
    rows.sort(key=lambda row: row["name"])
    return {"active": active, "profiles": rows}


ACCOUNT_READS_AT_ONCE = 4
ACCOUNT_TIMEOUT_S = 30.0


async def accounts(redis: Redis, keys: Keys, data_root: Path, codex_bin: str | None) -> list[dict[str, Any]]:
    """The Codex account behind each profile (default first), as the app-server reports it —
    the same facts `codex-broker doctor --live` prints."""
    names = [
        "default",
        *sorted(_text(n) for n in await redis.hkeys(keys.auth_profiles) if _text(n) != "default"),
    ]  # type: ignore[misc]
    if codex_bin is None:
        return [AccountFacts(n, ok=False, error="no Codex CLI found (CODEX_BIN)").as_dict() for n in names]
    gate = asyncio.Semaphore(ACCOUNT_READS_AT_ONCE)

    async def one(name: str) -> dict[str, Any]:
        async with gate:
            found = await read_account(
                codex_bin, codex_home(data_root, name), name, timeout_s=ACCOUNT_TIMEOUT_S
            )
        return found.as_dict()

    return list(await asyncio.gather(*(one(n) for n in names)))

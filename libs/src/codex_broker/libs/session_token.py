"""The session's http-api capability token: minted by the runner into a file only that session reads.

The token opens one thread's chat/file/job routes. It never travels through Codex's input, so it
is in no developer instructions, rollout, RunRequest or log: the runner writes it to
`DATA_ROOT/sessions/<safe key>/.broker-api-token` (mode 0600, beside — never inside — the
workspace, so no commit picks it up), a path only that session's sealed commands can read
(libs/sealing.py), and the instructions name the path. Redis holds only its sha256:
`keys.session_by_token(sha256)` = session key and `keys.session_token_hash(key)` = sha256, both
expiring after the token's lifetime, which each run refreshes.

Rotation: a new Codex thread (the first message, `/new`) gets a fresh token, and the
orchestrator's `/new` revokes the old one at once (`revoke_session_token`), so the previous
thread's commands lose access even before the next run. A file whose token Redis no longer knows
(revoked, expired, Redis restored) is replaced at the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys

TOKEN_FILE = ".broker-api-token"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_file(data_root: Path, session_key: str) -> Path:
    return paths.session_dir(data_root, session_key) / TOKEN_FILE


def write_private_file(path: Path, content: str) -> None:
    """Atomic write, created 0600 (never readable by others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


async def ensure_session_token(
    redis: Redis, keys: Keys, data_root: Path, session_key: str, *, ttl_s: int, rotate: bool = False
) -> Path:
    """Make sure the session's token file holds a live token and extend its lifetime.

    Cheap when valid (one round trip: two GETEX). `rotate` mints a new token
    whatever the file holds (a new Codex thread)."""
    path = token_file(data_root, session_key)
    current = None if rotate else read_token(path)
    file_key_is_ours = False
    if current is not None:
        is_current, file_key_is_ours = await _refresh(redis, keys, session_key, token_sha256(current), ttl_s)
        if is_current:
            return path
    token = secrets.token_urlsafe(32)
    digest = token_sha256(token)
    old = await redis.get(keys.session_token_hash(session_key))
    stale = {_text(old)} if old is not None else set()
    if current is not None and file_key_is_ours:
        stale.add(token_sha256(current))  # the file's own stale token, extended by the refresh
    pipe = redis.pipeline(transaction=True)
    for previous in sorted(stale - {digest}):
        pipe.delete(keys.session_by_token(previous))
    pipe.set(keys.session_by_token(digest), session_key, ex=ttl_s)
    pipe.set(keys.session_token_hash(session_key), digest, ex=ttl_s)
    await pipe.execute()
    write_private_file(path, token)
    return path


async def _refresh(redis: Redis, keys: Keys, session_key: str, digest: str, ttl_s: int) -> tuple[bool, bool]:
    """Extend the file's token; returns (it is still the session's current token, its key
    names this session).

    One round trip (it sits before `turn/start` of every follow-up): both keys are read and
    extended at once. When the token is not current the caller mints a new one at once, which
    overwrites the session's hash and deletes the file's key — only if it is this session's:
    the file is writable by the session's own commands, so what it holds is never trusted to
    name a key of another session (which it could only do by holding that session's token)."""
    pipe = redis.pipeline(transaction=False)
    pipe.getex(keys.session_by_token(digest), ex=ttl_s)
    pipe.getex(keys.session_token_hash(session_key), ex=ttl_s)
    owner, current = await pipe.execute()
    ours = owner is not None and _text(owner) == session_key
    is_current = ours and current is not None and hmac.compare_digest(_text(current), digest)
    return is_current, ours


async def revoke_session_token(redis: Redis, keys: Keys, session_key: str) -> None:
    """The session's token stops working now (`/new`, session deleted); the file is replaced
    by the runner at the next run."""
    old = await redis.get(keys.session_token_hash(session_key))
    pipe = redis.pipeline(transaction=True)
    if old is not None:
        pipe.delete(keys.session_by_token(_text(old)))
    pipe.delete(keys.session_token_hash(session_key))
    await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

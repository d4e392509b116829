"""The commit hook's credential: a narrow per-session token in a 0600 file outside the workspace.

git runs the commit-msg hook with the repository as cwd, whatever runs git. The broker writes
`DATA_ROOT/sessions/<safe key>/.broker-session` (JSON {v, session_key, token}, mode 0600) next to
— never inside — the session workspace; the hook walks up from the repository to find it.

The token is not the session capability token: it opens only the co-author endpoints
(`/git/coauthors/resolve` and `/status`) of its session, so a file read by something it was not
meant for leaks at most who co-authors that thread. Redis holds only its sha256:
`keys.git_hook_token(sha256)` = session key and `keys.session_git_hook_token(session key)` =
sha256 (so a replaced token stops working).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from codex_broker.libs.session_token import token_sha256, write_private_file

HOOK_FILE = ".broker-session"


def hook_file(data_root: Path, session_key: str) -> Path:
    return paths.session_dir(data_root, session_key) / HOOK_FILE


def read_hook_file(path: Path) -> tuple[str, str] | None:
    """(session key, token) from a hook file, or None when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    session_key, token = data.get("session_key"), data.get("token")
    if not isinstance(session_key, str) or not isinstance(token, str) or not token:
        return None
    return session_key, token


def write_hook_file(path: Path, session_key: str, token: str) -> None:
    write_private_file(path, json.dumps({"v": 1, "session_key": session_key, "token": token}))


async def ensure_hook_token(redis: Redis, keys: Keys, data_root: Path, session_key: str) -> Path:
    """Make sure the session has a working hook file; idempotent and cheap (one GET when valid)."""
    path = hook_file(data_root, session_key)
    found = read_hook_file(path)
    if found is not None and found[0] == session_key:
        digest = token_sha256(found[1])
        owner = await redis.get(keys.git_hook_token(digest))
        if owner is not None and _text(owner) == session_key:
            return path
    token = secrets.token_urlsafe(32)
    digest = token_sha256(token)
    old = await redis.get(keys.session_git_hook_token(session_key))
    pipe = redis.pipeline(transaction=False)
    if old is not None and _text(old) != digest:
        pipe.delete(keys.git_hook_token(_text(old)))
    pipe.set(keys.git_hook_token(digest), session_key)
    pipe.set(keys.session_git_hook_token(session_key), digest)
    await pipe.execute()
    write_hook_file(path, session_key, token)
    return path


async def session_of_hook_token(redis: Redis, keys: Keys, token: str) -> str | None:
    """The session a hook token opens, or None (unknown, or replaced by a newer one)."""
    digest = token_sha256(token)
    owner = await redis.get(keys.git_hook_token(digest))
    if owner is None:
        return None
    session_key = _text(owner)
    current = await redis.get(keys.session_git_hook_token(session_key))
    if current is None or not hmac.compare_digest(_text(current), digest):
        return None
    return session_key


async def revoke_hook_token(redis: Redis, keys: Keys, data_root: Path, session_key: str) -> None:
    """Forget the session's hook token (session deleted)."""
    old = await redis.get(keys.session_git_hook_token(session_key))
    pipe = redis.pipeline(transaction=False)
    if old is not None:
        pipe.delete(keys.git_hook_token(_text(old)))
    pipe.delete(keys.session_git_hook_token(session_key))
    await pipe.execute()
    with contextlib.suppress(OSError):
        hook_file(data_root, session_key).unlink()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Shared pieces of the git identity tests: the real http-api app on 127.0.0.1, sessions, git.

The app is `create_app(ctx)` of the http-api; when `app.py` does not mount the co-author routes
yet, they are added to the same app here (the routes are what is under test, mounted exactly as
`create_app` would).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from redis.asyncio import Redis

from codex_broker.codex_runner.git_identity import GitHome, GitIdentitySettings, prepare_git_home
from codex_broker.http_api.app import create_app
from codex_broker.http_api.coauthors.routes import coauthor_routes
from codex_broker.http_api.config import Settings as ApiSettings
from codex_broker.http_api.context import AppContext
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import Coordinates, OutboundAction, decode
from codex_broker.libs.hook_token import ensure_hook_token, token_sha256
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import session_workspace
from tests.helpers import free_port, wait_for

CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"


class GitSettings(GitIdentitySettings):
    """The mixin on its own (the runner's Settings inherit it)."""


def git_settings(**values: Any) -> GitSettings:
    base: dict[str, Any] = {"gh_token": None, "github_token": None, "git_ssh_auth_sock": None}
    base.update(values)
    return GitSettings(_env_file=None, **base)  # type: ignore[call-arg]


def api_settings(redis_url: str, key_prefix: str, data_root: Path, **values: Any) -> ApiSettings:
    return ApiSettings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        shard_count=4,
        data_root=data_root,
        _env_file=None,  # type: ignore[call-arg]
        **values,
    )


def mounted_app(ctx: AppContext) -> Any:
    app = create_app(ctx)
    if not any(getattr(route, "path", None) == "/git/coauthors/resolve" for route in app.routes):
        app.router.routes.extend(coauthor_routes(ctx))
    return app


@contextlib.asynccontextmanager
async def serve_api(ctx: AppContext) -> AsyncIterator[str]:
    """The http-api served by uvicorn on 127.0.0.1 in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(mounted_app(ctx), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout_s=10, what="http-api started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@dataclass
class Session:
    coords: Coordinates
    token: str
    workspace: Path
    hook_file: Path

    @property
    def key(self) -> str:
        return self.coords.session_key

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def make_session(
    redis: Redis,
    keys: Keys,
    data_root: Path,
    participants: dict[str, str],
    *,
    platform: str = "slack",
    conversation: str = "C0GIT",
) -> Session:
    """What the orchestrator keeps for a session: hash, participants, token, workspace, hook file."""
    coords = Coordinates(
        platform=platform, conversation_id=conversation, root_message_id=secrets.token_hex(6)
    )  # type: ignore[arg-type]
    sk = coords.session_key
    workspace = session_workspace(data_root, sk)
    workspace.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    await redis.hset(
        keys.session(sk),
        mapping={
            "platform": coords.platform,
            "conversation_id": coords.conversation_id,
            "root_message_id": coords.root_message_id,
            "workspace": str(workspace),
        },
    )
    if participants:
        await redis.hset(keys.session_participants(sk), mapping=participants)  # type: ignore[arg-type]
    await redis.set(keys.session_token_hash(sk), token_sha256(token))
    await redis.set(keys.session_by_token(token_sha256(token)), sk)
    hook_file = await ensure_hook_token(redis, keys, data_root, sk)
    return Session(coords=coords, token=token, workspace=workspace, hook_file=hook_file)


def git_home(codex_home: Path, api_base: str, **settings: Any) -> GitHome:
    return prepare_git_home(codex_home, git_settings(**settings), api_base=api_base, child_path=CHILD_PATH)


def git_env(home: GitHome, api_base: str, tmp: Path, **extra: str) -> dict[str, str]:
    """Roughly Codex's shell: minimal PATH, its own HOME, our global git config, no system config."""
    env = {
        "PATH": CHILD_PATH,
        "HOME": str(tmp),
        "GIT_CONFIG_GLOBAL": str(home.config_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "BROKER_API_BASE": api_base,
        "LANG": "C",
    }
    env.update(extra)
    return env


def run_git(
    cwd: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


async def agit(
    cwd: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """git in a thread: the http-api serving the hook runs in this event loop."""
    return await asyncio.to_thread(run_git, cwd, env, *args, stdin=stdin)


async def init_repo(path: Path, env: dict[str, str]) -> Path:
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    done = await agit(path, env, "init", "-q", "-b", "main", ".")
    assert done.returncode == 0, done.stderr
    return path


async def commit(repo: Path, env: dict[str, str], message: str, name: str = "f.txt") -> str:
    """Commit a change through the hook; the full message of the new commit."""
    (repo / name).write_text(os.urandom(8).hex(), encoding="utf-8")
    added = await agit(repo, env, "add", name)
    assert added.returncode == 0, added.stderr
    done = await agit(repo, env, "commit", "-q", "-m", message)
    assert done.returncode == 0, done.stderr
    shown = await agit(repo, env, "log", "-1", "--format=%B")
    return shown.stdout


async def outbound_actions(redis: Redis, keys: Keys, platform: str) -> list[OutboundAction]:
    entries = await redis.xrange(keys.outbound_stream(platform))
    return [decode(OutboundAction, fields[DATA_FIELD.encode()]) for _, fields in entries]

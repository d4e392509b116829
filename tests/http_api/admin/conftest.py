"""Admin API fixtures: the real http-api app (create_app) on a real Redis, isolated by key prefix."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis

from codex_broker.http_api.app import create_app
from codex_broker.http_api.config import Settings
from codex_broker.http_api.context import AppContext
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.keys import Keys, session_key_of
from codex_broker.libs.paths import session_workspace

ADMIN_TOKEN = "admin-test-token-0123456789"
ADMIN_HEADERS = {"x-admin-token": ADMIN_TOKEN}
LOOPBACK = ("127.0.0.1", 40001)
BASE_URL = "http://127.0.0.1:3000"  # a Host the admin cookie is accepted on (the default allow-list)

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


def make_context(redis: Redis, keys: Keys, data_root: Path, token: str | None, **values: Any) -> AppContext:
    settings = Settings(  # type: ignore[call-arg]
        data_root=data_root,
        key_prefix=keys.prefix,
        shard_count=keys.shard_count,
        broker_admin_token=SecretStr(token) if token else None,
        _env_file=None,  # a developer's .env must not change what the tests see
        **values,
    )
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    return AppContext(settings=settings, redis=redis, keys=keys, bus=bus)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest_asyncio.fixture
async def admin_client(redis: Redis, keys: Keys, data_root: Path) -> AsyncIterator[ClientFactory]:
    """Factory: `await admin_client(token=..., client=(host, port), headers=...)` → httpx client on
    an app configured with `token` (None: no admin token at all)."""
    opened: list[httpx.AsyncClient] = []

    async def factory(
        *,
        token: str | None = ADMIN_TOKEN,
        client: tuple[str, int] = LOOPBACK,
        headers: dict[str, str] | None = None,
        base_url: str = BASE_URL,
        **settings: Any,
    ) -> httpx.AsyncClient:
        app = create_app(make_context(redis, keys, data_root, token, **settings))
        transport = httpx.ASGITransport(app=app, client=client)
        http = httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)
        opened.append(http)
        return http

    yield factory
    for http in opened:
        await http.aclose()


@pytest_asyncio.fixture
async def api(admin_client: ClientFactory) -> httpx.AsyncClient:
    """An operator's client: the admin token in its header, JSON on every request."""
    return await admin_client(headers={**ADMIN_HEADERS, "content-type": "application/json"})


async def seed_session(
    redis: Redis,
    keys: Keys,
    data_root: Path,
    *,
    platform: str = "slack",
    conversation: str = "C1",
    root: str = "1700000000.000100",
    last_activity_ms: int | None = None,
    thread_id: str | None = "thread-1",
    auth_profile: str | None = None,
    state: str = "idle",
    active_run_id: str | None = None,
    timeline: list[dict[str, Any]] | None = None,
    participants: dict[str, str] | None = None,
) -> str:
    """A session as the orchestrator writes it (hash, state, index, timeline, workspace dir)."""
    sk = session_key_of(platform, conversation, root)
    workspace = session_workspace(data_root, sk)
    workspace.mkdir(parents=True)
    (workspace / "notes.txt").write_text("work in progress")
    now = last_activity_ms or int(time.time() * 1000)
    fields: dict[str, Any] = {
        "platform": platform,
        "conversation_id": conversation,
        "root_message_id": root,
        "workspace": str(workspace),
        "status": "active",
        "created_at_ms": now - 60_000,
        "last_activity_ms": now,
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
    }
    if thread_id:
        fields["thread_id"] = thread_id
    if auth_profile:
        fields["auth_profile"] = auth_profile
    await redis.hset(keys.session(sk), mapping=fields)  # type: ignore[misc]
    state_fields = {"state": state}
    if active_run_id:
        state_fields["active_run_id"] = active_run_id
    await redis.hset(keys.session_state(sk), mapping=state_fields)  # type: ignore[misc]
    await redis.zadd(keys.sessions_index, {sk: now})
    for entry in timeline or []:
        await redis.lpush(keys.session_timeline(sk), json.dumps(entry))  # type: ignore[misc]
    if participants:
        await redis.hset(keys.session_participants(sk), mapping=participants)  # type: ignore[misc]
    return sk

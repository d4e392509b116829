"""Fixtures for http-api tests: the app in-process (httpx ASGI transport) on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis import Redis as SyncRedis

from codex_broker.http_api.app import create_app
from codex_broker.http_api.config import Settings
from codex_broker.http_api.context import AppContext
from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.keys import Keys
from tests.http_api.support import Responder, make_session


@pytest.fixture
def sync_redis(redis_url: str, key_prefix: str) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"{key_prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def api_settings(redis_url: str, key_prefix: str, data_root: Path, tmp_path: Path) -> Settings:
    extra_root = tmp_path / "shared"
    extra_root.mkdir()
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        shard_count=4,
        data_root=data_root,
        rpc_timeout_s=5.0,
        upload_timeout_s=5.0,
        feishu_max_image_bytes=1000,
        feishu_max_file_bytes=3000,
        max_upload_bytes=5000,
        max_body_bytes=64 * 1024,
        allowed_file_roots=[extra_root],
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest_asyncio.fixture
async def ctx(api_settings: Settings) -> AsyncIterator[AppContext]:
    context = AppContext.create(api_settings)
    yield context
    await context.aclose()


@pytest_asyncio.fixture
async def client(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


@dataclass
class Session:
    coords: Coordinates
    token: str
    workspace: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def body(self, **extra: object) -> dict[str, object]:
        return {
            "platform": self.coords.platform,
            "conversationId": self.coords.conversation_id,
            "rootMessageId": self.coords.root_message_id,
            **extra,
        }


@pytest.fixture
def session(sync_redis: SyncRedis, keys: Keys, data_root: Path) -> Session:
    coords = Coordinates(platform="slack", conversation_id="C1", root_message_id="111.222")
    token, workspace = make_session(sync_redis, keys, coords, data_root)
    return Session(coords, token, workspace)


@pytest.fixture
def feishu_session(sync_redis: SyncRedis, keys: Keys, data_root: Path) -> Session:
    coords = Coordinates(platform="feishu", conversation_id="oc_1", root_message_id="om_1")
    token, workspace = make_session(sync_redis, keys, coords, data_root)
    return Session(coords, token, workspace)


@pytest.fixture
def responder(redis_url: str, keys: Keys) -> Iterator[Responder]:
    with Responder(redis_url, keys) as running:
        yield running

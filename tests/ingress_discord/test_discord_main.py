"""ingress-discord as its service frame runs it (`main.serve`): disabled cleanly without a token,
ready once its gateway session is up (against the fake Discord)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from redis.asyncio import Redis

from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.main import serve
from codex_broker.libs.keys import Keys
from tests.fakes.fake_discord import FakeDiscord
from tests.helpers import free_port, wait_for


async def _get(port: int, path: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await client.get(f"http://127.0.0.1:{port}{path}")
    except httpx.HTTPError:
        return None


def _settings(redis_url: str, key_prefix: str, tmp_path: Path, port: int, **extra: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        shard_count=4,
        data_root=tmp_path / "data",
        metrics_port=port,
        heartbeat_interval_s=0.2,
        **extra,  # type: ignore[arg-type]
    )


async def test_without_a_token_the_service_stays_up_and_says_disabled(
    redis: Redis, redis_url: str, key_prefix: str, keys: Keys, tmp_path: Path
) -> None:
    port = free_port()
    settings = _settings(redis_url, key_prefix, tmp_path, port, discord_bot_token="")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    response = await wait_for(lambda: _get(port, "/readyz"), what="/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["discord"] == "disabled: DISCORD_BOT_TOKEN not set"
    await wait_for(lambda: redis.exists(keys.heartbeat("ingress-discord", settings.instance_id)), what="beat")
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


async def test_ready_once_the_gateway_session_is_up(
    redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    with FakeDiscord() as fake:
        extra = {k.lower(): v for k, v in fake.env.items()}
        settings = _settings(redis_url, key_prefix, tmp_path, port, **extra)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop))

        async def ready() -> httpx.Response | None:
            response = await _get(port, "/readyz")
            return response if response is not None and response.status_code == 200 else None

        response = await wait_for(ready, timeout_s=30, what="ready")
        assert response.json()["checks"]["discord"] == "ok" and fake.connected()
        metrics = await _get(port, "/metrics")
        assert metrics is not None and "cb_discord_gateway_connected 1.0" in metrics.text
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
        assert not fake.connected()  # the gateway session was closed on the way out

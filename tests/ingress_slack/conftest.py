"""ingress-slack running in the test's event loop against the fake Slack (its own thread) and real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.ingress_slack.config import Settings
from codex_broker.ingress_slack.main import serve
from tests.fakes.fake_slack import FakeSlack
from tests.helpers import wait_for


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(ack_timeout_s=1.0, max_retries=3) as fake:
        fake.add_user("U1", "alice", display_name="Alice")
        fake.add_user("U2", "bob", display_name="Bob", real_name="Bob Builder")
        yield fake


@dataclass
class Ingress:
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def shutdown(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, timeout=40)


StartIngress = Callable[..., Awaitable[Ingress]]


@pytest_asyncio.fixture
async def start_ingress(
    slack: FakeSlack, redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path
) -> AsyncIterator[StartIngress]:
    started: list[Ingress] = []

    async def start(*, wait_connected: bool = True, **overrides: Any) -> Ingress:
        values: dict[str, Any] = {
            "slack_api_url": slack.api_url,
            "slack_bot_token": slack.bot_token,
            "slack_app_token": slack.app_token,
            "redis_url": redis_url,
            "key_prefix": key_prefix,
            "shard_count": 4,
            "data_root": tmp_path / "data",
            "metrics_port": 0,
            "heartbeat_interval_s": 1.0,
            "claim_idle_ms": 1000,
            "outbound_block_ms": 200,
            "instance_id": f"slack-test-{len(started)}",
        }
        values.update(overrides)
        settings = Settings(**values)
        stop = asyncio.Event()
        ingress = Ingress(settings, stop, asyncio.create_task(serve(settings, stop)))
        started.append(ingress)
        if wait_connected:
            await wait_for(lambda: slack.connections() >= 1, timeout_s=20, what="socket mode connection")
        return ingress

    yield start
    for ingress in started:
        if not ingress.task.done():
            await ingress.shutdown()

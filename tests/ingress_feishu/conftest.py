"""Fixtures: the fake Feishu on 127.0.0.1 and ingress-feishu running in this process against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.ingress_feishu.config import Settings
from codex_broker.ingress_feishu.main import serve
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.contracts import InboundEvent, OutboundAction, OutboundResult, decode
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import wait_reply
from tests.fakes.fake_feishu import FakeFeishu
from tests.helpers import wait_for


@pytest.fixture
def fake() -> Iterator[FakeFeishu]:
    # a fresh app id per test: lark's token cache is process-wide and keyed by app id
    server = FakeFeishu(redeliver_after_s=2.0).start()
    yield server
    server.stop()


@pytest.fixture
def make_settings(
    fake: FakeFeishu, redis_url: str, key_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "key_prefix": key_prefix,
            "shard_count": 4,
            "data_root": tmp_path / "data",
            "metrics_port": 0,
            "instance_id": "feishu-test-1",
            "heartbeat_interval_s": 0.5,
            "feishu_app_id": fake.app_id,
            "feishu_app_secret": fake.app_secret,
            "feishu_domain": fake.url,
            "feishu_ws_lease_ms": 3000,
            "claim_idle_ms": 1000,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@dataclass
class RunningIngress:
    settings: Settings
    redis: Redis
    keys: Keys
    fake: FakeFeishu
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def inbound(self) -> list[InboundEvent]:
        """Every InboundEvent in every inbound shard stream, in stream order per shard."""
        found: list[InboundEvent] = []
        for shard in range(self.keys.shard_count):
            for _, fields in await self.redis.xrange(self.keys.inbound_stream(shard)):
                found.append(decode(InboundEvent, fields[b"data"]))
        return found

    async def wait_inbound(self, count: int, *, timeout_s: float = 15.0) -> list[InboundEvent]:
        async def probe() -> list[InboundEvent] | None:
            events = await self.inbound()
            return events if len(events) >= count else None

        return await wait_for(probe, timeout_s=timeout_s, what=f"{count} inbound events")

    async def publish(self, action: OutboundAction) -> None:
        bus = StreamBus(self.redis, dead_letter_stream=self.keys.dead_letter_stream)
        await bus.publish(self.keys.outbound_stream("feishu"), action)

    async def request(self, action: OutboundAction, *, timeout_s: float = 15.0) -> OutboundResult:
        reply_to = self.keys.rpc_reply(action.action_id)
        action.reply_to = reply_to
        await self.publish(action)
        return await wait_reply(self.redis, reply_to, OutboundResult, timeout_s=timeout_s)

    async def heartbeat(self) -> dict[str, Any]:
        raw = await self.redis.get(self.keys.heartbeat("ingress-feishu", self.settings.instance_id))
        return json.loads(raw) if raw else {}

    async def dead_letters(self) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in await self.redis.xrange(self.keys.dead_letter_stream)]


async def wait_connected(fake: FakeFeishu, *, timeout_s: float = 15.0) -> None:
    await wait_for(lambda: fake.connected() > 0, timeout_s=timeout_s, what="the long connection")


@pytest_asyncio.fixture
async def start_ingress(
    make_settings: Callable[..., Settings], redis: Redis, keys: Keys, fake: FakeFeishu
) -> AsyncIterator[Callable[..., Any]]:
    running: list[RunningIngress] = []

    async def start(*, connect: bool = True, **overrides: Any) -> RunningIngress:
        settings = make_settings(**overrides)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop))
        ingress = RunningIngress(settings, redis, keys, fake, stop, task)
        running.append(ingress)
        if connect and settings.enabled:
            await wait_connected(fake)
        return ingress

    yield start
    for ingress in running:
        ingress.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ingress.task, timeout=30)

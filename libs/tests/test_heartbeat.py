"""Heartbeat keys: TTL, payload, read back by status, gone after clear or expiry."""

from __future__ import annotations

import asyncio
import os
import time

from redis.asyncio import Redis

from codex_broker.libs.heartbeat import Heartbeat, read_heartbeats
from codex_broker.libs.keys import Keys


async def test_heartbeat_has_ttl_and_is_read_back(redis: Redis, keys: Keys) -> None:
    runner = Heartbeat(
        redis=redis,
        keys=keys,
        service="codex-runner",
        instance="codex-runner-1",
        ttl_s=20,
        started_at=time.time(),
        details=lambda: {"active": 1, "capacity": 4},
    )
    orch = Heartbeat(redis=redis, keys=keys, service="orchestrator", instance="orchestrator-1", ttl_s=20)
    await runner.beat()
    await orch.beat()
    assert 0 < await redis.ttl(keys.heartbeat("codex-runner", "codex-runner-1")) <= 20
    beats = await read_heartbeats(redis, keys)
    assert [(b["service"], b["instance"]) for b in beats] == [
        ("codex-runner", "codex-runner-1"),
        ("orchestrator", "orchestrator-1"),
    ]
    assert beats[0]["pid"] == os.getpid()
    assert beats[0]["active"] == 1 and beats[0]["capacity"] == 4
    await runner.clear()
    assert [b["service"] for b in await read_heartbeats(redis, keys)] == ["orchestrator"]


async def test_heartbeat_expires_without_renewal(redis: Redis, keys: Keys) -> None:
    beat = Heartbeat(redis=redis, keys=keys, service="orchestrator", instance="o-dead", ttl_s=1)
    await beat.beat()
    assert len(await read_heartbeats(redis, keys)) == 1
    for _ in range(60):  # bounded: a 1 s TTL is gone well within 3 s
        if not await read_heartbeats(redis, keys):
            break
        await asyncio.sleep(0.05)
    assert await read_heartbeats(redis, keys) == []


async def test_other_prefixes_are_not_seen(redis: Redis, keys: Keys) -> None:
    other = Keys(prefix=keys.prefix + "x", shard_count=4)
    beat = Heartbeat(redis=redis, keys=other, service="orchestrator", instance="o1", ttl_s=5)
    await beat.beat()
    try:
        assert await read_heartbeats(redis, keys) == []
    finally:
        await beat.clear()

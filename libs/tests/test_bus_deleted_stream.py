"""A consumer survives its stream being deleted under it, before or while it blocks."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, Delivery, StreamBus


async def test_consumer_recreates_group_when_stream_is_deleted_while_blocking(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    stream = f"t{uuid.uuid4().hex[:8]}:stream:x"
    bus = StreamBus(redis, dead_letter_stream=f"{stream}:dl")
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.data)

    consumer = Consumer(bus, [stream], ConsumerConfig(group="g", consumer="c", block_ms=2000), handle)
    await consumer.drain()  # creates the group
    blocked = asyncio.create_task(consumer.run_once(block=True))
    await asyncio.sleep(0.3)
    await redis.delete(stream)  # Redis answers the blocked XREADGROUP with UNBLOCKED
    assert await asyncio.wait_for(blocked, timeout=5) == 0
    await bus.publish(stream, "after")
    await consumer.drain()
    assert seen == ["after"]
    await redis.delete(stream, f"{stream}:dl")
    await redis.aclose()

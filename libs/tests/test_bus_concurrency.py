"""With `concurrency > 1`, a slow entry holds up only its own partition, and order holds in each."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, Delivery, StreamBus
from codex_broker.libs.keys import Keys


async def test_a_slow_partition_does_not_hold_up_the_others(redis: Redis, keys: Keys) -> None:
    stream = keys.outbound_stream("slack")
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    release_slow = asyncio.Event()
    handled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        body = json.loads(delivery.data)
        if body["thread"] == "slow" and body["n"] == 0:
            await release_slow.wait()  # e.g. a 429 with Retry-After on one thread
        handled.append((body["thread"], body["n"]))

    consumer = Consumer(
        bus,
        [stream],
        ConsumerConfig(group="g", consumer="c", count=2, block_ms=200, concurrency=4),
        handle,
        partition_key=lambda d: json.loads(d.data)["thread"],
    )
    await bus.publish(stream, json.dumps({"thread": "slow", "n": 0}))
    await bus.publish(stream, json.dumps({"thread": "slow", "n": 1}))
    for n in range(4):  # arrive in later reads than the slow entry
        await bus.publish(stream, json.dumps({"thread": "fast", "n": n}))

    stop = asyncio.Event()
    loop = asyncio.create_task(consumer.run(stop))
    for _ in range(100):
        if [t for t in handled if t[0] == "fast"] == [("fast", n) for n in range(4)]:
            break
        await asyncio.sleep(0.05)
    assert [t for t in handled if t[0] == "fast"] == [("fast", n) for n in range(4)]
    assert ("slow", 1) not in handled, "the slow thread's next entry waits for its first"

    release_slow.set()
    stop.set()
    await asyncio.wait_for(loop, timeout=10)  # the loop drains what is in flight before returning
    assert [t for t in handled if t[0] == "slow"] == [("slow", 0), ("slow", 1)]
    pending = await redis.xpending(stream, "g")
    assert pending["pending"] == 0

"""StreamBus and Consumer against the real Redis: ack, reclaim, dead letters, MAXLEN, outages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, DeadLetter, Delivery, StreamBus
from codex_broker.libs.contracts import Actor, InboundEvent, decode
from codex_broker.libs.keys import Keys


def _event(n: int = 1) -> InboundEvent:
    return InboundEvent(
        event_id=f"slack:C1:{n}",
        platform="slack",
        conversation_id="C1",
        root_message_id="100.1",
        message_id=f"100.{n}",
        actor=Actor(id="U1", display_name="Ann"),
        text=f"hello {n}",
    )


def _consumer(
    bus: StreamBus, stream: str, name: str, handler: Callable[[Delivery], Awaitable[None]], **config: object
) -> Consumer:
    return Consumer(
        bus=bus,
        streams=[stream],
        config=ConsumerConfig(group="g", consumer=name, block_ms=100, **config),  # type: ignore[arg-type]
        handler=handler,
    )


async def _until(probe: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _pending(redis: Redis, stream: str) -> int:
    info = await redis.xpending(stream, "g")
    return int(info["pending"])


async def test_handled_entry_is_acked(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(0)
    seen: list[InboundEvent] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(decode(InboundEvent, delivery.data))

    consumer = _consumer(bus, stream, "a", handle)
    await consumer.run_once()  # creates the group
    await bus.publish(stream, _event(1))
    await bus.publish(stream, _event(2))
    assert await consumer.drain() == 2
    assert [e.text for e in seen] == ["hello 1", "hello 2"]
    assert await _pending(redis, stream) == 0


async def test_entry_of_dead_consumer_is_redelivered_to_another(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.runs_stream
    await bus.ensure_group(stream, "g")
    entry_id = await bus.publish(stream, _event(1))
    # consumer A reads the entry and dies before acking it
    read = await redis.xreadgroup("g", "a", {stream: ">"}, count=1)
    assert read and read[0][1][0][0].decode() == entry_id
    got: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        got.append(delivery)

    consumer_b = _consumer(bus, stream, "b", handle, claim_idle_ms=200)
    assert await consumer_b.run_once() == 0  # not idle long enough yet: A may still be working

    async def reclaimed() -> bool:
        await consumer_b.run_once()
        return bool(got)

    await _until(reclaimed, "consumer b to reclaim the entry")
    assert got[0].entry_id == entry_id
    assert got[0].deliveries == 2
    assert await _pending(redis, stream) == 0


async def test_dead_letter_after_max_deliveries_with_reason(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(1)
    attempts: list[int] = []

    async def failing(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise RuntimeError("boom")

    consumer = _consumer(bus, stream, "a", failing, claim_idle_ms=0, max_deliveries=3)
    await consumer.run_once()
    entry_id = await bus.publish(stream, _event(1))

    async def dead_lettered() -> bool:
        await consumer.run_once()
        return bool(await redis.xlen(keys.dead_letter_stream))

    await _until(dead_lettered, "the entry to reach the dead-letter stream")
    assert attempts == [1, 2, 3]
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream)
    assert fields[b"source_stream"].decode() == stream
    assert fields[b"source_id"].decode() == entry_id
    assert fields[b"group"] == b"g"
    assert fields[b"reason"] == b"gave up after 3 deliveries"
    assert decode(InboundEvent, fields[b"data"]).event_id == "slack:C1:1"
    assert await _pending(redis, stream) == 0


async def test_undecodable_entry_is_dead_lettered_at_once(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(2)
    calls = 0

    async def handle(delivery: Delivery) -> None:
        nonlocal calls
        calls += 1
        decode(InboundEvent, delivery.data)

    consumer = _consumer(bus, stream, "a", handle)
    await consumer.run_once()
    await bus.publish(stream, "{not json")
    await bus.publish(stream, '{"v": 1, "platform": "slack"}')
    assert await consumer.drain() == 2
    assert calls == 2
    entries = await redis.xrange(keys.dead_letter_stream)
    assert len(entries) == 2
    reasons = [fields[b"reason"].decode() for _, fields in entries]
    assert all(r.startswith("ContractError: invalid InboundEvent") for r in reasons)
    assert [fields[b"deliveries"] for _, fields in entries] == [b"1", b"1"]
    assert await _pending(redis, stream) == 0


async def test_handler_dead_letter_exception_carries_reason(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")

    async def handle(delivery: Delivery) -> None:
        raise DeadLetter("channel_not_found")

    consumer = _consumer(bus, stream, "a", handle)
    await consumer.run_once()
    await bus.publish(stream, _event(1))
    await consumer.drain()
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream)
    assert fields[b"reason"] == b"DeadLetter: channel_not_found"


async def test_publish_trims_to_approximate_maxlen(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream, maxlen=100)
    stream = keys.inbound_stream(3)
    pipe_rounds = 1000
    for n in range(pipe_rounds):
        await bus.publish(stream, f'{{"n": {n}}}')
    length = await redis.xlen(stream)
    # approximate trimming drops whole radix-tree nodes (100 entries each by default)
    assert 100 <= length <= 200
    last = await redis.xrevrange(stream, count=1)
    assert last[0][1][b"data"] == b'{"n": 999}'
    await bus.publish(stream, '{"n": "x"}', maxlen=10_000)
    assert await redis.xlen(stream) == length + 1


async def test_consumer_survives_a_redis_outage(private_redis, keys: Keys) -> None:  # type: ignore[no-untyped-def]
    client = Redis.from_url(private_redis.url, socket_connect_timeout=1)
    bus = StreamBus(client, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(0)
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(decode(InboundEvent, delivery.data).text)

    consumer = _consumer(bus, stream, "a", handle, backoff_initial_s=0.05, backoff_max_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await bus.publish(stream, _event(1))

        async def saw(n: int) -> bool:
            return len(seen) >= n

        await _until(lambda: saw(1), "the first entry before the outage")
        private_redis.stop()
        await asyncio.sleep(0.3)  # the consumer loop now meets connection errors and backs off
        assert not task.done()
        private_redis.start()  # same port, empty data: group and stream are recreated
        await _until(
            lambda: _publish_ok(bus, stream, _event(2)), "publishing after Redis came back", timeout_s=15
        )
        await _until(lambda: saw(2), "the entry published after the outage", timeout_s=15)
        assert seen == ["hello 1", "hello 2"]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        with contextlib.suppress(Exception):
            await client.aclose()


async def _publish_ok(bus: StreamBus, stream: str, event: InboundEvent) -> bool:
    try:
        await bus.publish(stream, event)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_same_partition_stays_in_order(redis: Redis, keys: Keys, concurrency: int) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(0)
    order: list[str] = []

    async def handle(delivery: Delivery) -> None:
        event = decode(InboundEvent, delivery.data)
        await asyncio.sleep(0.001 * (5 - int(event.message_id.split(".")[1]) % 5))
        order.append(event.message_id)

    consumer = Consumer(
        bus=bus,
        streams=[stream],
        config=ConsumerConfig(group="g", consumer="a", count=50, concurrency=concurrency),
        handler=handle,
        partition_key=lambda d: decode(InboundEvent, d.data).session_key,
    )
    await consumer.run_once()
    for n in range(10):
        await bus.publish(stream, _event(n))
    await consumer.drain()
    assert order == [f"100.{n}" for n in range(10)]

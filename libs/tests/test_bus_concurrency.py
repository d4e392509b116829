"""Consumer with `concurrency > 1`: per-partition queues, no head-of-line blocking, clean shutdown.

A partition here is the `p` field of a JSON entry; `n` numbers the entries of one partition.
Blocking handlers wait on asyncio events, so every check is about order and state, not time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, Delivery, StreamBus
from codex_broker.libs.keys import Keys


def _partition(delivery: Delivery) -> str:
    return str(json.loads(delivery.data)["p"])


def _entry(delivery: Delivery) -> tuple[str, int]:
    body = json.loads(delivery.data)
    return body["p"], body["n"]


def _consumer(
    bus: StreamBus, stream: str, handler: Callable[[Delivery], Awaitable[None]], **config: object
) -> Consumer:
    settings: dict[str, object] = {"group": "g", "consumer": "c", "block_ms": 100, "concurrency": 4}
    settings.update(config)
    return Consumer(
        bus=bus,
        streams=[stream],
        config=ConsumerConfig(**settings),  # type: ignore[arg-type]
        handler=handler,
        partition_key=_partition,
    )


async def _publish(bus: StreamBus, stream: str, partition: str, n: int) -> str:
    return await bus.publish(stream, json.dumps({"p": partition, "n": n}))


async def _until(probe: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _pending(redis: Redis, stream: str) -> int:
    return int((await redis.xpending(stream, "g"))["pending"])


def _new_tasks(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task not in before and not task.done()}


async def test_a_slow_partition_does_not_hold_up_the_others(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    release = asyncio.Event()
    handled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        if _entry(delivery) == ("slow", 0):
            await release.wait()  # a 429 with Retry-After on one thread
        handled.append(_entry(delivery))

    consumer = _consumer(bus, stream, handle, count=2)
    await _publish(bus, stream, "slow", 0)
    await _publish(bus, stream, "slow", 1)
    for n in range(10):  # in later reads than the slow entry
        await _publish(bus, stream, "fast", n)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _until(lambda: len(handled) == 10, "the fast partition")
        assert handled == [("fast", n) for n in range(10)]
        assert not release.is_set()  # all of that while the slow entry was still blocked
        release.set()
        await _until(lambda: len(handled) == 12, "the slow partition")
        assert handled[10:] == [("slow", 0), ("slow", 1)]
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert await _pending(redis, stream) == 0


@pytest.mark.parametrize("mode", ["run", "drain"])
async def test_order_holds_within_each_partition(redis: Redis, keys: Keys, mode: str) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("feishu")
    handled: dict[str, list[int]] = {}
    partitions, per_partition = 6, 40

    async def handle(delivery: Delivery) -> None:
        partition, n = _entry(delivery)
        for _ in range((n * 7 + len(partition)) % 4):  # uneven handler lengths
            await asyncio.sleep(0)
        handled.setdefault(partition, []).append(n)

    consumer = _consumer(bus, stream, handle, count=7, max_in_flight=10)
    await consumer.run_once()  # creates the group
    for n in range(per_partition):
        for p in range(partitions):
            await _publish(bus, stream, f"p{p}", n)

    if mode == "drain":
        assert await consumer.drain() == partitions * per_partition
        assert consumer.in_flight == 0  # drain returns when everything is handled
    else:
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        await _until(lambda: sum(map(len, handled.values())) == partitions * per_partition, "all entries")
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert handled == {f"p{p}": list(range(per_partition)) for p in range(partitions)}
    assert await _pending(redis, stream) == 0


async def test_in_flight_entries_and_running_handlers_are_bounded(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    gate = asyncio.Event()
    running = 0
    most_running = 0
    most_pending = 0
    handled = 0

    async def handle(delivery: Delivery) -> None:
        nonlocal running, most_running, most_pending, handled
        running += 1
        most_running = max(most_running, running)
        # read from Redis but not acked yet: what this consumer holds
        most_pending = max(most_pending, await _pending(redis, stream))
        await gate.wait()
        running -= 1
        handled += 1

    consumer = _consumer(bus, stream, handle, count=16, concurrency=2, max_in_flight=5)
    for n in range(30):
        await _publish(bus, stream, f"t{n}", 0)  # 30 partitions: all could run at once

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _until(lambda: running == 2 and consumer.in_flight == 5, "two handlers and a full reader")
        for _ in range(20):  # the reader is waiting for room, not reading
            await asyncio.sleep(0.01)
            assert await _pending(redis, stream) == 5
        gate.set()
        await _until(lambda: handled == 30, "all entries")
    finally:
        gate.set()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert most_running == 2
    assert most_pending <= 5
    assert await _pending(redis, stream) == 0


async def test_stop_waits_for_entries_in_flight_and_leaves_no_task(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("feishu")
    release = asyncio.Event()
    started: list[tuple[str, int]] = []
    handled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        started.append(_entry(delivery))
        await release.wait()
        handled.append(_entry(delivery))

    before = asyncio.all_tasks()
    consumer = _consumer(bus, stream, handle, drain_timeout_s=30)
    for p in ("a", "b"):
        await _publish(bus, stream, p, 0)
    await _publish(bus, stream, "a", 1)  # queued behind a/0
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: len(started) == 2, "both partitions to start")
    stop.set()
    for _ in range(30):  # reading has ended; the consumer waits for its handlers
        await asyncio.sleep(0.01)
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, timeout=10)
    assert sorted(handled) == [("a", 0), ("a", 1), ("b", 0)]
    assert await _pending(redis, stream) == 0
    assert _new_tasks(before) == set()


async def test_what_outlasts_the_drain_timeout_is_cancelled_and_stays_pending(
    redis: Redis, keys: Keys
) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    started = asyncio.Event()
    cancelled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        if _entry(delivery)[0] == "stuck":
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(_entry(delivery))
                raise

    before = asyncio.all_tasks()
    consumer = _consumer(bus, stream, handle, drain_timeout_s=0.2)
    stuck_id = await _publish(bus, stream, "stuck", 0)
    await _publish(bus, stream, "other", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.wait_for(started.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert cancelled == [("stuck", 0)]
    pending = await redis.xpending_range(stream, "g", min="-", max="+", count=10)
    assert [p["message_id"].decode() for p in pending] == [stuck_id]  # reclaimed later
    assert _new_tasks(before) == set()


async def test_cancelled_run_cancels_its_handlers(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("feishu")
    started: list[tuple[str, int]] = []
    cancelled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        started.append(_entry(delivery))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(_entry(delivery))
            raise

    before = asyncio.all_tasks()
    consumer = _consumer(bus, stream, handle)
    for p in ("a", "b", "c"):
        await _publish(bus, stream, p, 0)
    task = asyncio.create_task(consumer.run(asyncio.Event()))
    await _until(lambda: len(started) == 3, "three handlers")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == [("a", 0), ("b", 0), ("c", 0)]
    assert _new_tasks(before) == set()
    assert consumer.in_flight == 0
    assert await _pending(redis, stream) == 3


async def test_entry_in_flight_is_not_handled_again_when_reclaimed(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    release = asyncio.Event()
    calls: list[tuple[tuple[str, int], int]] = []

    async def handle(delivery: Delivery) -> None:
        calls.append((_entry(delivery), delivery.deliveries))
        if _entry(delivery) == ("a", 0):
            await release.wait()

    # every pass reclaims everything idle for 0 ms: the entries in flight come back each time
    consumer = _consumer(bus, stream, handle, claim_idle_ms=0, claim_interval_s=0)
    passes = 0

    def streams() -> list[str]:  # asked once per pass
        nonlocal passes
        passes += 1
        return [stream]

    consumer.streams = streams
    await consumer.run_once()
    first = await _publish(bus, stream, "a", 0)
    await _publish(bus, stream, "a", 1)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _until(lambda: bool(calls), "the first entry")
        seen = passes
        await _until(lambda: passes >= seen + 5, "more reclaim passes")
        [entry] = await redis.xpending_range(stream, "g", min=first, max=first, count=1)
        assert entry["times_delivered"] == 1  # the reclaim of its own entry is not a delivery
        release.set()
        await _until(lambda: len(calls) == 2, "the second entry")
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert calls == [(("a", 0), 1), (("a", 1), 1)]
    assert await _pending(redis, stream) == 0


async def test_dead_letter_after_max_deliveries_when_concurrent(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("feishu")
    attempts: list[int] = []
    handled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        if _entry(delivery)[0] == "bad":
            attempts.append(delivery.deliveries)
            raise RuntimeError("boom")
        handled.append(_entry(delivery))

    consumer = _consumer(bus, stream, handle, claim_idle_ms=0, max_deliveries=3)
    await consumer.run_once()
    bad_id = await _publish(bus, stream, "bad", 0)
    await _publish(bus, stream, "good", 0)
    await consumer.drain()
    assert attempts == [1, 2, 3]
    assert handled == [("good", 0)]
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream)
    assert fields[b"source_id"].decode() == bad_id
    assert fields[b"reason"] == b"gave up after 3 deliveries"
    assert await _pending(redis, stream) == 0


async def test_reclaim_over_several_streams_stays_within_the_bound(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    streams = [keys.outbound_stream("slack"), keys.outbound_stream("feishu")]
    for stream in streams:
        await bus.ensure_group(stream, "g")
        for n in range(2):
            await _publish(bus, stream, f"{stream}/{n}", 0)
        await redis.xreadgroup("g", "dead", {stream: ">"})  # a consumer that died holding them
    handled: list[str] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(_entry(delivery)[0])

    consumer = _consumer(bus, streams[0], handle, claim_idle_ms=0, count=2, max_in_flight=2)
    consumer.streams = streams
    assert await consumer.drain() == 4
    assert sorted(handled) == sorted(f"{stream}/{n}" for stream in streams for n in range(2))
    assert [await _pending(redis, stream) for stream in streams] == [0, 0]


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_stop_ends_a_blocking_read(redis: Redis, redis_url: str, keys: Keys, concurrency: int) -> None:
    client = Redis.from_url(redis_url, socket_timeout=None)  # a blocking read never times out
    bus = StreamBus(client, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    handled: list[tuple[str, int]] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(_entry(delivery))

    before = asyncio.all_tasks()
    consumer = _consumer(bus, stream, handle, block_ms=600_000, concurrency=concurrency)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _publish(bus, stream, "a", 0)
        await _until(lambda: bool(handled), "the entry")
        await _until(lambda: consumer.in_flight == 0, "the ack")
        await asyncio.sleep(0.2)  # back in XREADGROUP, blocking for up to 10 minutes
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        assert _new_tasks(before) == set()
        await _publish(bus, stream, "a", 1)  # the client still works after the cancelled read
        assert await consumer.drain() == 1
        assert handled == [("a", 0), ("a", 1)]
    finally:
        task.cancel()
        await client.aclose()

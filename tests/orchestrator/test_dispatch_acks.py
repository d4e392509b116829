"""The session dispatcher's acks on real Redis: group-committed, and an item counts as finished
(shard load, in-flight set) only once its ack has landed."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from codex_broker.libs.bus import Delivery, StreamBus
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from codex_broker.orchestrator.dispatch import AckBatcher, SessionDispatcher, WorkItem


async def _pending_entries(redis: Redis, stream: str, count: int) -> list[str]:
    await redis.xgroup_create(stream, GROUP_ORCHESTRATOR, id="0", mkstream=True)
    for i in range(count):
        await redis.xadd(stream, {"data": json.dumps({"i": i})})
    response = await redis.xreadgroup(GROUP_ORCHESTRATOR, "c1", {stream: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in response[0][1]]


async def test_acks_of_one_loop_turn_go_out_together_and_all_land(redis: Redis, keys: Keys) -> None:
    stream = keys.inbound_stream(0)
    ids = await _pending_entries(redis, stream, 50)
    batcher = AckBatcher(redis, GROUP_ORCHESTRATOR)

    futures = [batcher.ack(stream, entry_id) for entry_id in ids]

    assert len({id(f) for f in futures}) == 1, "acks queued in one loop turn share one batch"
    await asyncio.gather(*futures)
    pending = await redis.xpending(stream, GROUP_ORCHESTRATOR)
    assert pending["pending"] == 0


async def test_acks_queued_during_a_flush_go_out_in_the_next_batch(redis: Redis, keys: Keys) -> None:
    stream = keys.inbound_stream(1)
    ids = await _pending_entries(redis, stream, 4)
    batcher = AckBatcher(redis, GROUP_ORCHESTRATOR)
    first = batcher.ack(stream, ids[0])
    for _ in range(10):  # a few loop turns: the flusher takes the first batch, then waits on Redis
        if not batcher.unsent:
            break
        await asyncio.sleep(0)
    assert batcher.unsent == 0 and not first.done()
    second = [batcher.ack(stream, entry_id) for entry_id in ids[1:]]

    assert second[0] is not first and all(f is second[0] for f in second)
    await asyncio.gather(first, *second)
    assert (await redis.xpending(stream, GROUP_ORCHESTRATOR))["pending"] == 0


async def test_a_failed_ack_fails_its_batch_and_leaves_the_entries_pending(redis: Redis, keys: Keys) -> None:
    stream = keys.inbound_stream(2)
    ids = await _pending_entries(redis, stream, 3)
    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens there
    batcher = AckBatcher(gone, GROUP_ORCHESTRATOR)

    futures = [batcher.ack(stream, entry_id) for entry_id in ids]
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert all(isinstance(r, Exception) for r in results)
    assert (await redis.xpending(stream, GROUP_ORCHESTRATOR))["pending"] == 3
    await gone.aclose()


async def test_an_item_is_finished_only_after_its_ack_and_the_next_item_does_not_wait(
    redis: Redis, keys: Keys
) -> None:
    stream = keys.inbound_stream(3)
    ids = await _pending_entries(redis, stream, 2)
    handled: list[str] = []

    async def handler(item: WorkItem) -> None:
        assert item.delivery is not None
        handled.append(item.delivery.entry_id)

    dispatcher = SessionDispatcher(
        StreamBus(redis, dead_letter_stream=keys.dead_letter_stream), handler, asyncio.Event()
    )
    for entry_id in ids:
        delivery = Delivery(stream=stream, entry_id=entry_id, data="{}")
        dispatcher.submit(WorkItem("inbound", 3, "session-a", delivery=delivery))
    assert dispatcher.load(3) == 2 and dispatcher.in_flight_entries == set(ids)

    await asyncio.wait_for(dispatcher.wait_shard_idle(3), 10)

    assert handled == ids, "in order, the second without waiting for the first's ack"
    assert dispatcher.in_flight_entries == set()
    assert (await redis.xpending(stream, GROUP_ORCHESTRATOR))["pending"] == 0
    await dispatcher.close()

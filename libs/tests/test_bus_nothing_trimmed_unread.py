"""Issue 16 item 6 against the real Redis: answer and run-event streams keep every entry some
group has not handled, and a pending entry found gone is reported, not acked silently."""

from __future__ import annotations

from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.bus import (
    MISSING_REASON,
    Consumer,
    ConsumerConfig,
    Delivery,
    StreamBus,
    ack_horizon,
    keeps_unhandled,
    trim_handled,
)
from codex_broker.libs.keys import Keys


def test_which_streams_keep_unhandled_entries(keys: Keys) -> None:
    assert keeps_unhandled(keys.outbound_stream("slack"))
    assert keeps_unhandled(keys.run_events_stream(3))
    assert not keeps_unhandled(keys.inbound_stream(3))
    assert not keeps_unhandled(keys.runner_control_stream("r1"))
    assert not keeps_unhandled(keys.dead_letter_stream)


def test_ack_horizon() -> None:
    assert ack_horizon([]) is None  # nobody consumes it yet: all of it is unread
    assert ack_horizon([("0-0", None)]) is None  # a group that read nothing
    assert ack_horizon([("5-0", None)]) == "5-0"
    assert ack_horizon([("9-0", "3-1")]) == "3-1"  # the oldest pending bounds it
    assert ack_horizon([("9-0", None), ("4-2", None), ("12-0", "10-0")]) == "4-2"
    assert ack_horizon([("10-0", None), ("9-10", None)]) == "9-10"  # numeric, not text, order


async def test_publish_never_trims_an_outbound_stream(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream, maxlen=10)
    stream = keys.outbound_stream("slack")
    await bus.ensure_group(stream, "ingress")
    for n in range(300):  # an approximate MAXLEN 10 would have dropped whole 100-entry nodes
        await bus.publish(stream, f'{{"n": {n}}}')
    assert await redis.xlen(stream) == 300


async def test_trim_keeps_pending_and_unread_entries(redis: Redis, keys: Keys) -> None:
    stream = keys.outbound_stream("feishu")
    ids = [(await redis.xadd(stream, {"data": str(n)})).decode() for n in range(6)]
    assert await trim_handled(redis, stream, alert_above=100, approximate=False) == 6  # no group
    await redis.xgroup_create(stream, "ingress", id="0")
    await redis.xreadgroup("ingress", "c1", {stream: ">"}, count=4)
    await redis.xack(stream, "ingress", ids[0], ids[1], ids[3])  # ids[2] still pending
    assert await trim_handled(redis, stream, alert_above=100, approximate=False) == 4
    assert [e.decode() for e, _ in await redis.xrange(stream)] == ids[2:]
    # an alert, not a drop, when the backlog is over the limit
    assert await trim_handled(redis, stream, alert_above=1, approximate=False) == 4
    assert metrics.STREAM_UNHANDLED.labels(stream="outbound:feishu")._value.get() == 4


async def test_a_missing_pending_outbound_entry_is_reported(redis: Redis, keys: Keys) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("slack")
    await bus.ensure_group(stream, "ingress")
    lost = (await redis.xadd(stream, {"data": "{}"})).decode()
    kept = (await redis.xadd(stream, {"data": '{"n": 2}'})).decode()
    await redis.xreadgroup("ingress", "dead-replica", {stream: ">"}, count=10)  # both pending there
    await redis.xdel(stream, lost)  # gone while pending (by hand, or an older release's MAXLEN)
    before = metrics.STREAM_ENTRIES_MISSING.labels(stream="outbound:slack")._value.get()
    handled: list[str] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(delivery.entry_id)

    consumer = Consumer(
        bus=bus,
        streams=[stream],
        config=ConsumerConfig(group="ingress", consumer="live", block_ms=50, claim_idle_ms=0),
        handler=handle,
    )
    await consumer.drain()
    assert handled == [kept]
    assert int((await redis.xpending(stream, "ingress"))["pending"]) == 0
    records = [fields for _, fields in await redis.xrange(keys.dead_letter_stream)]
    assert [(r[b"source_stream"].decode(), r[b"source_id"].decode()) for r in records] == [(stream, lost)]
    assert records[0][b"reason"].decode() == MISSING_REASON
    assert metrics.STREAM_ENTRIES_MISSING.labels(stream="outbound:slack")._value.get() == before + 1

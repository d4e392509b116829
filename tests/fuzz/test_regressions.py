"""Minimal regression tests for bugs the fuzz runs found (one test per bug, no hypothesis).

1. An entry whose `data` bytes are not UTF-8 killed the consumer that read it: the shared
   `Consumer` (ingress outbound, runner controls), the orchestrator's shard reader and the
   runner's claim loop all decoded the bytes strictly outside any handler. Now it is
   dead-lettered with a reason and the next entry is handled.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, Delivery, StreamBus
from codex_broker.libs.contracts import RunControl, RunRequest, decode
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, GROUP_RUNNERS, Keys
from codex_broker.orchestrator.service import Orchestrator
from tests.fuzz.support import acked, dead_letters
from tests.fuzz.test_streams import COORDS, mention, readers_alive, run_events_of
from tests.helpers import wait_for

NOT_UTF8 = b'{"v": 1, "text": "\xff\xfe"}'


async def test_not_utf8_entry_is_dead_lettered_by_the_shared_consumer(redis: Redis, keys: Keys) -> None:
    stream = f"{keys.prefix}:stream:fuzz"
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(decode(RunControl, delivery.data).run_id)

    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    consumer = Consumer(bus, [stream], ConsumerConfig(group="g", consumer="c", block_ms=100), handler)
    bad = (await redis.xadd(stream, {"data": NOT_UTF8})).decode()
    await redis.xadd(
        stream, {"data": RunControl(run_id="r2", session_key="s", kind="interrupt").model_dump_json()}
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await wait_for(lambda: seen == ["r2"] or task.done(), what="the entry after the bad one")
        assert not task.done(), task.exception()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    row = (await dead_letters(redis, keys.dead_letter_stream))[(stream, bad)]
    assert "UTF-8" in row.reason


async def test_not_utf8_inbound_entry_is_dead_lettered_by_the_orchestrator(
    orchestrator: Orchestrator, redis: Redis, keys: Keys
) -> None:
    event = mention(10_000)
    stream = keys.inbound_stream_for(event.session_key)
    bad = (await redis.xadd(stream, {"data": NOT_UTF8})).decode()
    good = (await redis.xadd(stream, {"data": event.model_dump_json()})).decode()
    await wait_for(lambda: acked(redis, stream, GROUP_ORCHESTRATOR, [bad, good]), what="both entries done")
    readers_alive(orchestrator)
    assert (stream, bad) in await dead_letters(redis, keys.dead_letter_stream)


async def test_not_utf8_run_request_is_dead_lettered_by_the_runner(runner, redis: Redis, keys: Keys) -> None:  # type: ignore[no-untyped-def]
    stream = keys.runs_stream
    bad = (await redis.xadd(stream, {"data": NOT_UTF8})).decode()
    request = RunRequest(
        session_key=COORDS.session_key,
        coords=COORDS,
        workspace=str(runner.settings.data_root / "sessions" / "fuzz" / "workspace"),
        input=[{"type": "text", "text": "hi"}],  # type: ignore[list-item]
    )
    await redis.xadd(stream, {"data": request.model_dump_json()})

    async def claimed() -> bool:
        return any(
            e.kind == "accepted" for e in await run_events_of(redis, keys, COORDS.session_key, request.run_id)
        )

    await wait_for(claimed, what="the valid run after the bad entry claimed")
    await wait_for(lambda: _has_dead_letter(redis, keys, stream, bad), what="the bad entry dead-lettered")
    assert await acked(redis, stream, GROUP_RUNNERS, [bad])


async def _has_dead_letter(redis: Redis, keys: Keys, stream: str, entry_id: str) -> bool:
    return (stream, entry_id) in await dead_letters(redis, keys.dead_letter_stream)

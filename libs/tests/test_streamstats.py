"""The backlog gauges on real Redis: every shard stream family is sampled and summed per family,
the job-callback streams beside the platform inbound ones."""

from __future__ import annotations

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from codex_broker.libs import streamstats
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_job_callback_streams_are_sampled_and_reported_as_one_family(redis: Redis, keys: Keys) -> None:
    streams = streamstats.known_streams(keys)
    for shard in range(keys.shard_count):
        assert keys.inbound_stream(shard) in streams and keys.job_callback_stream(shard) in streams
    first, second = keys.job_callback_stream(0), keys.job_callback_stream(1)
    for stream, entries in ((first, 2), (second, 3)):
        await redis.xgroup_create(stream, GROUP_ORCHESTRATOR, id="0", mkstream=True)
        for i in range(entries):
            await redis.xadd(stream, {"data": str(i)})
    await redis.xreadgroup(GROUP_ORCHESTRATOR, "c1", {first: ">"}, count=1)  # 1 pending there
    await redis.xadd(keys.inbound_stream(0), {"data": "x"})

    streamstats.export(await streamstats.read_stream_stats(redis, streams), keys)

    assert _gauge("cb_stream_length", stream="job-callbacks") == 5
    assert _gauge("cb_stream_pending", stream="job-callbacks", group=GROUP_ORCHESTRATOR) == 1
    assert _gauge("cb_stream_lag", stream="job-callbacks", group=GROUP_ORCHESTRATOR) == 4
    assert _gauge("cb_stream_length", stream="inbound") == 1

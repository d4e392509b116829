"""A Lua script in a pipeline's own round trip, against a real Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from codex_broker.libs.keys import Keys
from codex_broker.libs.pipelined_script import PipelinedScript

BUMP = "return redis.call('incrby', KEYS[1], ARGV[1])"


def fresh_script(redis: Redis) -> PipelinedScript:
    # a source Redis has never seen (a unique comment), so the first call meets NOSCRIPT
    return PipelinedScript(redis, f"-- {uuid.uuid4().hex}\n{BUMP}")


async def test_a_script_redis_lacks_is_loaded_and_the_pipeline_repeated_once(
    redis: Redis, keys: Keys
) -> None:
    script = fresh_script(redis)
    counter, beside = f"{keys.prefix}:counter", f"{keys.prefix}:beside"

    def queue(pipe: Pipeline) -> None:
        script.queue(pipe, [counter], [5])
        pipe.incr(beside)

    assert await script.execute(queue) == [5, 2]  # the command beside it ran in both tries
    assert (await redis.script_exists(script.sha)) == [True]
    assert await script.execute(queue) == [10, 3]  # known now: one try


async def test_after_load_the_pipeline_runs_once(redis: Redis, keys: Keys) -> None:
    script = fresh_script(redis)
    await script.load()
    beside = f"{keys.prefix}:beside"

    def queue(pipe: Pipeline) -> None:
        script.queue(pipe, [f"{keys.prefix}:counter"], [1])
        pipe.incr(beside)

    assert await script.execute(queue) == [1, 1]

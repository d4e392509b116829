"""A Lua script run inside a pipeline in the pipeline's own round trip.

redis-py's `Script` queued on a pipeline (`script(keys, args, client=pipe)`) makes every
`execute()` first ask `SCRIPT EXISTS` on its own: one more round trip on each call, on paths
such as the runner's claim that sit before `turn/start` (docs/benchmarks.md). This queues a bare
`EVALSHA` instead and pays for the load only when Redis does not know the script (first use, a
Redis restart, `SCRIPT FLUSH`): the pipeline is then run once more after `SCRIPT LOAD`, so
everything queued with it must be safe to repeat (it ran once already, without the script).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

Queue = Callable[[Pipeline], None]


class PipelinedScript:
    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def load(self) -> None:
        """Make Redis know the script now (at start, after a reconnect), so that a first call
        rarely has to be repeated."""
        await self.redis.script_load(self.source)

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue one call of the script on `pipe`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def execute(self, build: Queue) -> list[Any]:
        """A fresh non-transactional pipeline filled by `build` (which queues this script with
        `queue`), executed; repeated once after loading the script if Redis lacked it."""
        try:
            return await self._run(build)
        except NoScriptError:
            await self.load()
            return await self._run(build)

    async def _run(self, build: Queue) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        build(pipe)
        return await pipe.execute()

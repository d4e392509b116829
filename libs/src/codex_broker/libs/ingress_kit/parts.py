"""Resumable multi-piece posts: which pieces of one post (`parts_id`) are already on the platform.

A long answer goes out as several messages. An adapter whose platform does not de-duplicate sends
by itself records each piece's message id right after the call returns, so a redelivered action
(a crash between two pieces) posts only the pieces still missing. `parts_id` is the kit's stable
id for the post (`Platform.post`'s `parts_id`, or an adapter's own, e.g. a live view's answer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys

PARTS_TTL_S = 2 * 86400


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PostedParts:
    def __init__(self, redis: Redis, keys: Keys, platform: str) -> None:
        self.redis = redis
        self.keys = keys
        self.platform = platform

    def _key(self, parts_id: str) -> str:
        return self.keys.outbound_ref(self.platform, f"parts:{parts_id}")

    async def posted(self, parts_id: str) -> dict[int, str]:
        """Index → message id of every piece already posted."""
        return {int(k): _text(v) for k, v in (await self.redis.hgetall(self._key(parts_id))).items()}

    async def record(self, parts_id: str, index: int, message_id: str) -> None:
        key = self._key(parts_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, str(index), message_id)
        pipe.expire(key, PARTS_TTL_S)
        await pipe.execute()

    async def post_missing(
        self, parts_id: str, count: int, send: Callable[[int], Awaitable[str]]
    ) -> list[str]:
        """Call `send(index)` for each piece not yet posted, in order; every piece's id."""
        done = await self.posted(parts_id)
        ids: list[str] = []
        for index in range(count):
            if index not in done:
                done[index] = await send(index)
                await self.record(parts_id, index, done[index])
            ids.append(done[index])
        return ids

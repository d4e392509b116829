"""The services' Redis client queues commands when its pool is busy instead of failing."""

from __future__ import annotations

import asyncio

from codex_broker.libs.runtime import REDIS_POOL_SIZE, redis_client


async def test_more_concurrent_commands_than_connections_wait_for_a_free_one(
    redis_url: str, key_prefix: str
) -> None:
    client = redis_client(redis_url)
    try:
        # each BLPOP holds its connection for a moment, so more than the pool's size are in use at
        # once: redis-py's default pool raises MaxConnectionsError here, this one waits
        calls = [client.blpop([f"{key_prefix}:empty"], timeout=0.3) for _ in range(REDIS_POOL_SIZE + 30)]
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        assert results == [None] * (REDIS_POOL_SIZE + 30)
    finally:
        await client.aclose()

"""The outbound lease is short and renewed while the effect runs (regression: a replica killed
mid-effect left a 120 s lease, every redelivery failed on it and the action was dead-lettered)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.keys import Keys


async def test_extend_renews_only_a_pending_lease(redis: Redis, keys: Keys) -> None:
    guard = Idempotency(redis, keys, "outbound")
    assert (await guard.claim("a1", lease_ms=200)).status == "new"
    assert await guard.extend("a1", lease_ms=60_000)
    assert await redis.pttl(keys.idempotency("outbound", "a1")) > 10_000
    await guard.complete("a1", "r", ttl_s=60)
    assert not await guard.extend("a1", lease_ms=60_000)  # a done marker is never turned back
    assert (await guard.claim("a1")).status == "done"
    assert not await guard.extend("missing", lease_ms=1000)
    assert await redis.get(keys.idempotency("outbound", "missing")) is None


async def test_a_dead_holders_lease_lapses_and_the_next_claim_takes_it(redis: Redis, keys: Keys) -> None:
    guard = Idempotency(redis, keys, "outbound")
    assert (await guard.claim("a2", lease_ms=300)).status == "new"  # the holder dies here
    assert (await guard.claim("a2", lease_ms=300)).status == "in_progress"
    await asyncio.sleep(0.4)
    assert (await guard.claim("a2", lease_ms=300)).status == "new"

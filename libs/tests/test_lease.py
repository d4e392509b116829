"""`Lease.renewed` on the real Redis: held past its TTL while the work runs, released after,
and a holder that stops renewing (dies) lets it lapse one TTL later."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.libs.lease import Lease


async def test_a_renewed_lease_outlives_its_ttl_and_is_released_after(redis: Redis, keys: Keys) -> None:
    key = keys.prefix + ":lease:view"
    lease = Lease(redis, key, "holder-a", ttl_ms=400)
    assert await lease.acquire()
    async with lease.renewed(every_s=0.1):
        await asyncio.sleep(1.2)  # three TTLs of work
        assert await redis.get(key) == b"holder-a"
        assert not await Lease(redis, key, "holder-b", ttl_ms=400).acquire()
    assert await redis.get(key) is None, "released on exit"


async def test_an_abandoned_lease_lapses_after_one_ttl(redis: Redis, keys: Keys) -> None:
    key = keys.prefix + ":lease:dead"
    assert await Lease(redis, key, "dead-holder", ttl_ms=300).acquire()  # never renewed again
    other = Lease(redis, key, "holder-b", ttl_ms=300)
    assert not await other.acquire()
    await asyncio.sleep(0.45)
    assert await other.acquire()


async def test_renewal_never_extends_someone_elses_lease(redis: Redis, keys: Keys) -> None:
    key = keys.prefix + ":lease:taken"
    mine = Lease(redis, key, "holder-a", ttl_ms=300)
    assert await mine.acquire()
    await redis.set(key, "holder-b", px=5000)  # ours lapsed and another took it meanwhile
    async with mine.renewed(every_s=0.05):
        await asyncio.sleep(0.2)
    assert await redis.get(key) == b"holder-b", "neither renewed nor released by the old holder"

"""Shard leases against the real Redis: handing a shard back waits for its in-flight work in the
background, so the renewal of every other lease goes on meanwhile (it used to wait inside the
tick: a slow hand-back let the other leases expire, and two replicas traded shards back and forth
instead of settling)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.leases import ShardLeases

LEASE_MS = 600


async def test_a_slow_hand_back_keeps_every_lease_renewed_until_its_work_is_done(
    redis: Redis, keys: Keys
) -> None:
    work_done = asyncio.Event()
    lost: list[int] = []

    async def on_gained(shard: int) -> None:
        return None

    async def on_lost(shard: int) -> None:
        lost.append(shard)
        await work_done.wait()  # the shard's in-flight work takes longer than a lease

    leases = ShardLeases(redis, keys, "orch-a", LEASE_MS, on_gained, on_lost)
    await leases.tick()
    everything = set(range(keys.shard_count))
    assert leases.held == everything  # alone: every shard

    # a second live replica: half the shards go back
    await redis.zadd(keys.orchestrator_members, {"orch-b": 10**13})
    await asyncio.wait_for(leases.tick(), timeout=LEASE_MS / 1000)  # returns before the work ends
    handing_back = set(leases.releasing)
    assert handing_back and leases.held == everything - handing_back

    for _ in range(6):  # three lease times of ticks while the hand-back waits
        await asyncio.wait_for(leases.tick(), timeout=LEASE_MS / 1000)  # never blocked by it
        await asyncio.sleep(LEASE_MS / 3000)
    holders = [await redis.get(keys.shard_lease(s)) for s in sorted(everything)]
    assert holders == [b"orch-a"] * len(everything)  # kept ones and the ones still handing back
    assert set(lost) == handing_back  # nothing else was lost meanwhile

    work_done.set()
    await asyncio.wait_for(asyncio.gather(*leases.releasing.values()), timeout=5)
    assert not leases.releasing
    released = [await redis.get(keys.shard_lease(s)) for s in sorted(handing_back)]
    assert released == [None] * len(handing_back)
    assert leases.held == everything - handing_back
    await leases.release_all()

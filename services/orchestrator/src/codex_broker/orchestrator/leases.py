"""Shard leases: which orchestrator replica handles which sessions.

Each replica registers in a members set with an expiry and aims to hold ceil(shards / live
replicas) shards. Leases are SET NX PX with the replica id as value and renewed only while the
value is still ours. A dead replica stops renewing; its leases and its membership expire after
`lease_ms`, and the survivors take the shards on their next tick — so takeover needs at most
lease_ms + renew_interval. A replica that stops (SIGTERM) hands its shards back at once.
A hand-back waits for the shard's in-flight work beside the tick, never inside it, so the other
leases keep being renewed (and the one handed back too, until its work is done).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from codex_broker.libs.keys import Keys
from codex_broker.libs.lease import RELEASE_IF_HELD, RENEW_IF_HELD
from codex_broker.libs.pipelined_script import PipelinedScript

log = logging.getLogger(__name__)


def preference(instance: str, shard: int) -> int:
    """Rendezvous hashing: each replica prefers a stable, different subset of shards."""
    digest = hashlib.blake2b(f"{instance}/{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def target_count(shard_count: int, live_replicas: int) -> int:
    return math.ceil(shard_count / max(1, live_replicas))


def plan_changes(
    *, instance: str, shard_count: int, held: set[int], free: set[int], live_replicas: int
) -> tuple[list[int], list[int]]:
    """(shards to try to acquire, shards to hand back) for one tick (pure)."""
    target = target_count(shard_count, live_replicas)
    ranked_free = sorted(free - held, key=lambda s: preference(instance, s), reverse=True)
    acquire = ranked_free[: max(0, target - len(held))]
    ranked_held = sorted(held, key=lambda s: preference(instance, s))
    release = ranked_held[: max(0, len(held) - target)]
    return acquire, release


ShardCallback = Callable[[int], Awaitable[None]]


@dataclass
class ShardLeases:
    redis: Redis
    keys: Keys
    instance: str
    lease_ms: int
    on_gained: ShardCallback
    on_lost: ShardCallback  # must finish the shard's in-flight work before returning
    held: set[int] = field(default_factory=set)
    # shards being handed back or lost whose in-flight work is still finishing (on_lost running):
    # not ours to plan with, not free to take again yet; a handed-back one is still renewed
    # until its work is done, so no other replica starts reading it meanwhile
    releasing: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _renew: Any = None
    _release: Any = None

    def __post_init__(self) -> None:
        self._renew = PipelinedScript(self.redis, RENEW_IF_HELD)
        self._release = self.redis.register_script(RELEASE_IF_HELD)

    async def tick(self) -> None:
        now = int(time.time() * 1000)
        live = await self._heartbeat_membership(now)
        await self._renew_held()
        free, mine = await self._scan_shards()
        for shard in mine:  # ours from before a restart under the same instance id: adopt at once
            [adopted] = await self._renew.execute(lambda pipe, s=shard: self._queue_renew(pipe, s))
            if adopted:
                self.held.add(shard)
                log.info("shard lease adopted", extra={"shard": shard})
                await self.on_gained(shard)
        acquire, release = plan_changes(
            instance=self.instance,
            shard_count=self.keys.shard_count,
            held=self.held,
            free=free,
            live_replicas=live,
        )
        for shard in release:  # in the background: waiting for in-flight work here would hold
            self._let_go(shard, self._hand_back(shard))  # up the renewal of every other lease
        if acquire:
            pipe = self.redis.pipeline(transaction=False)
            for shard in acquire:
                pipe.set(self.keys.shard_lease(shard), self.instance, nx=True, px=self.lease_ms)
            for shard, ok in zip(acquire, await pipe.execute(), strict=True):
                if ok:
                    self.held.add(shard)
                    log.info("shard lease acquired", extra={"shard": shard})
                    await self.on_gained(shard)

    async def release_all(self) -> None:
        for shard in sorted(self.held):
            self._let_go(shard, self._hand_back(shard))
        await asyncio.gather(*self.releasing.values(), return_exceptions=True)
        await self.redis.zrem(self.keys.orchestrator_members, self.instance)

    def _let_go(self, shard: int, work: Awaitable[None]) -> None:
        self.held.discard(shard)
        task = asyncio.ensure_future(work)
        self.releasing[shard] = task
        task.add_done_callback(lambda _: self._let_go_done(shard, task))

    def _let_go_done(self, shard: int, task: asyncio.Future[None]) -> None:
        if self.releasing.get(shard) is task:
            del self.releasing[shard]
        if not task.cancelled() and task.exception() is not None:
            log.error("shard hand-back failed", extra={"shard": shard, "error": repr(task.exception())})

    async def _heartbeat_membership(self, now: int) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.orchestrator_members, {self.instance: now + self.lease_ms})
        pipe.zremrangebyscore(self.keys.orchestrator_members, "-inf", now)
        pipe.zcard(self.keys.orchestrator_members)
        return int((await pipe.execute())[2])

    async def _renew_held(self) -> None:
        shards = sorted(self.held | self.releasing.keys())
        if not shards:
            return

        def queue(pipe: Pipeline) -> None:
            for shard in shards:  # renewing a lease still held is safe to repeat
                self._queue_renew(pipe, shard)

        for shard, ok in zip(shards, await self._renew.execute(queue), strict=True):
            if not ok and shard in self.held:  # expired and maybe taken: stop handling it now
                log.warning("shard lease lost", extra={"shard": shard})
                self._let_go(shard, self.on_lost(shard))

    def _queue_renew(self, pipe: Pipeline, shard: int) -> None:
        self._renew.queue(pipe, [self.keys.shard_lease(shard)], [self.instance, self.lease_ms])

    async def _scan_shards(self) -> tuple[set[int], list[int]]:
        """(shards nobody holds, shards not in `held` whose lease names this instance)."""
        shards = list(range(self.keys.shard_count))
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            pipe.get(self.keys.shard_lease(shard))
        free: set[int] = set()
        mine: list[int] = []
        for shard, holder in zip(shards, await pipe.execute(), strict=True):
            if shard in self.releasing:
                continue  # neither free nor to adopt until its in-flight work is done
            if holder is None:
                free.add(shard)
            elif shard not in self.held and holder.decode() == self.instance:
                mine.append(shard)
        return free, mine

    async def _hand_back(self, shard: int) -> None:
        await self.on_lost(shard)  # in-flight work of the shard is done when this returns
        await self._release(keys=[self.keys.shard_lease(shard)], args=[self.instance])
        log.info("shard lease released", extra={"shard": shard})

"""Due-time timers for sessions, kept in Redis so that they survive restarts and move with shards.

One sorted set per shard holds '<kind>|<session key>' scored by due time. One task per replica
sleeps in BLPOP on the wake lists of the shards it holds, with a timeout of the earliest due time;
anyone who schedules something pushes a nudge on the shard's wake list. So there is no per-session
sleep loop and no polling: the timer wakes exactly when something is due or was scheduled.
A fired entry stays in the set until the session worker handled it (`done`), so a crash between
firing and handling fires it again on whichever replica holds the shard next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys, shard_of

log = logging.getLogger(__name__)

MAX_WAIT_S = 1.0  # re-read the held shard set at least this often
WAKE_TRIM = 16

FireCallback = Callable[[int, str, str, str], None]  # shard, member, kind, session key


def member_of(kind: str, session_key: str) -> str:
    return f"{kind}|{session_key}"


def parse_member(member: str) -> tuple[str, str]:
    kind, _, session_key = member.partition("|")
    return kind, session_key


def now_ms() -> int:
    return int(time.time() * 1000)


def add_schedule(
    pipe: Any,
    keys: Keys,
    kind: str,
    session_key: str,
    due_ms: int,
    *,
    only_earlier: bool = False,
    nudge: bool = True,
) -> None:
    """Queue ZADD + wake nudge on `pipe` (the caller executes it with its other commands).

    Without `nudge` the entry is found on the timer's next regular pass (at most MAX_WAIT_S
    later): for safety nets that should not cost a wake-up on the hot path."""
    shard = shard_of(session_key, keys.shard_count)
    if only_earlier:
        pipe.zadd(keys.orchestrator_timers(shard), {member_of(kind, session_key): due_ms}, lt=True)
    else:
        pipe.zadd(keys.orchestrator_timers(shard), {member_of(kind, session_key): due_ms})
    if nudge:
        pipe.rpush(keys.orchestrator_wake(shard), "1")
        pipe.ltrim(keys.orchestrator_wake(shard), -WAKE_TRIM, -1)


def add_cancel(pipe: Any, keys: Keys, kind: str, session_key: str) -> None:
    shard = shard_of(session_key, keys.shard_count)
    pipe.zrem(keys.orchestrator_timers(shard), member_of(kind, session_key))


@dataclass
class Timers:
    redis: Redis
    keys: Keys
    held: Callable[[], set[int]]
    fire: FireCallback
    in_flight: set[tuple[int, str]] = field(default_factory=set)
    _nudge: asyncio.Event = field(default_factory=asyncio.Event)

    def nudge(self) -> None:
        """In-process wake-up (the held shard set changed)."""
        self._nudge.set()

    async def done(self, shard: int, member: str) -> None:
        """The worker handled a fired entry (it removed or moved it); recompute the next wake."""
        self.in_flight.discard((shard, member))
        await self.redis.rpush(self.keys.orchestrator_wake(shard), "1")

    def forget_shard(self, shard: int) -> None:
        self.in_flight = {(s, m) for s, m in self.in_flight if s != shard}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                await self.run_once(stop)
                backoff = 0.2
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                log.warning("timer: redis unavailable", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 10.0)

    async def run_once(self, stop: asyncio.Event | None = None) -> None:
        shards = sorted(self.held())
        if not shards:
            self._nudge.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), timeout=MAX_WAIT_S)
            return
        next_due = await self.fire_due(shards)
        if stop is not None and stop.is_set():
            return
        wait_s = MAX_WAIT_S if next_due is None else min(MAX_WAIT_S, max(0.005, (next_due - now_ms()) / 1000))
        if self._nudge.is_set():
            self._nudge.clear()
            return
        wake_keys = [self.keys.orchestrator_wake(s) for s in shards]
        if await self.redis.blpop(wake_keys, timeout=wait_s) is not None:
            await self.redis.delete(*wake_keys)

    async def fire_due(self, shards: list[int]) -> int | None:
        """Fire every due entry not already in flight; return the next due time (ms) or None."""
        now = now_ms()
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            key = self.keys.orchestrator_timers(shard)
            in_flight = sum(1 for fs, _ in self.in_flight if fs == shard)
            pipe.zrangebyscore(key, "-inf", now, start=0, num=in_flight + 64, withscores=True)
            pipe.zrangebyscore(key, f"({now}", "+inf", start=0, num=1, withscores=True)
        results = await pipe.execute()
        next_due: int | None = None
        for index, shard in enumerate(shards):
            due, later = results[2 * index], results[2 * index + 1]
            if later:
                score = int(later[0][1])
                next_due = score if next_due is None else min(next_due, score)
            for raw_member, _ in due:
                member = raw_member.decode() if isinstance(raw_member, bytes) else str(raw_member)
                if (shard, member) in self.in_flight:
                    continue
                self.in_flight.add((shard, member))
                kind, session_key = parse_member(member)
                self.fire(shard, member, kind, session_key)
        return next_due

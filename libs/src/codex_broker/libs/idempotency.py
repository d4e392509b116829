"""Idempotency keys: do an effect at most once per key (within the key's TTL).

`claim` takes a short lease (SET NX PX) before the effect; `complete` turns it into a long-lived
'done' marker holding the effect's result; `release` drops the lease when the effect failed so
that a redelivery can try again. A consumer that dies mid-effect loses its lease when it
expires, and the redelivered entry retries.

For effects that can be slow, keep the lease short and renew it while the effect runs
(`renewing`), and let a consumer that finds someone else's lease wait it out (`claim_waiting`):
a dead holder then blocks the effect for about one short lease, not for the slowest effect's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

DONE_PREFIX = "done:"
PENDING = "pending"
_EXTEND = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0
end
return 0"""


@dataclass(frozen=True)
class Claim:
    status: Literal["new", "in_progress", "done"]
    result: str | None = None


class Idempotency:
    def __init__(self, redis: Redis, keys: Keys, scope: str) -> None:
        self.redis = redis
        self.keys = keys
        self.scope = scope

    def _key(self, key: str) -> str:
        return self.keys.idempotency(self.scope, key)

    async def first_time(self, key: str, *, ttl_s: int) -> bool:
        """One-shot guard: True only for the first caller of `key` within `ttl_s`."""
        return bool(await self.redis.set(self._key(key), DONE_PREFIX, nx=True, ex=ttl_s))

    async def claim(self, key: str, *, lease_ms: int = 30_000) -> Claim:
        full = self._key(key)
        if await self.redis.set(full, PENDING, nx=True, px=lease_ms):
            return Claim("new")
        current = await self.redis.get(full)
        if current is None:  # expired between the two calls: try once more
            return (
                Claim("new")
                if await self.redis.set(full, PENDING, nx=True, px=lease_ms)
                else Claim("in_progress")
            )
        text = current.decode() if isinstance(current, bytes) else str(current)
        if text.startswith(DONE_PREFIX):
            return Claim("done", text[len(DONE_PREFIX) :])
        return Claim("in_progress")

    async def extend(self, key: str, *, lease_ms: int) -> bool:
        """Renew a lease we hold (still `pending`) so that a slow effect keeps it; False if it
        is gone or done. Lets a short lease cover a long effect: a dead holder's lease then
        expires soon after it died, instead of blocking redeliveries for the whole effect time."""
        return bool(await self.redis.eval(_EXTEND, 1, self._key(key), PENDING, lease_ms))  # type: ignore[misc]

    async def claim_waiting(self, key: str, *, lease_ms: int, wait_s: float, poll_s: float = 0.5) -> Claim:
        """`claim`, but while another consumer holds the lease, poll for up to `wait_s`: it is
        either done soon (→ "done", nothing to redo) or its holder died and the lease lapses
        (→ "new"). Still "in_progress" after `wait_s` means a live holder is slow."""
        claim = await self.claim(key, lease_ms=lease_ms)
        deadline = time.monotonic() + wait_s
        while claim.status == "in_progress" and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
            claim = await self.claim(key, lease_ms=lease_ms)
        return claim

    @contextlib.asynccontextmanager
    async def renewing(self, key: str, *, lease_ms: int, every_s: float) -> AsyncIterator[None]:
        """Hold our lease on `key` for as long as the block runs, renewing it every `every_s`
        (well under `lease_ms`, so one missed renewal does not lose it)."""
        renew = asyncio.create_task(self._renew(key, lease_ms, every_s))
        try:
            yield
        finally:
            renew.cancel()
            await asyncio.wait([renew])  # unlike `await renew`, never swallows our own cancel

    async def _renew(self, key: str, lease_ms: int, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                held = await self.extend(key, lease_ms=lease_ms)
            except Exception as exc:  # a missed renewal only shortens the lease
                log.warning("lease renewal failed", extra={"scope": self.scope, "error": str(exc)[:200]})
                continue
            if not held:
                log.warning("lease lost while the effect runs", extra={"scope": self.scope, "key": key})
                return

    async def complete(self, key: str, result: str = "", *, ttl_s: int) -> None:
        await self.redis.set(self._key(key), DONE_PREFIX + result, ex=ttl_s)

    async def release(self, key: str) -> None:
        await self.redis.delete(self._key(key))

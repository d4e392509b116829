"""Idempotency keys: do an effect at most once per key (within the key's TTL).

`claim` takes a short lease (SET NX PX) before the effect; `complete` turns it into a long-lived
'done' marker holding the effect's result; `release` drops the lease when the effect failed so
that a redelivery can try again. A consumer that dies mid-effect loses its lease when it
expires, and the redelivered entry retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys

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

    async def complete(self, key: str, result: str = "", *, ttl_s: int) -> None:
        await self.redis.set(self._key(key), DONE_PREFIX + result, ex=ttl_s)

    async def release(self, key: str) -> None:
        await self.redis.delete(self._key(key))

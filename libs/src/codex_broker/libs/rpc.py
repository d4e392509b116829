"""Request/reply over Redis: the request goes on a stream, the reply on a per-request list key.

The requester BLPOPs its reply key with a timeout, so no polling. The replier RPUSHes the reply
and gives the key a TTL, so a reply nobody waits for anymore expires by itself.
"""

from __future__ import annotations

import time

from pydantic import BaseModel
from redis.asyncio import Redis

from codex_broker.libs.contracts import M, decode, encode, new_id

REPLY_TTL_S = 120
BLOCK_SLICE_S = 2.0


class RpcTimeout(TimeoutError):
    """No reply within the timeout: the peer is down, busy, or the request was lost."""


def new_reply_key(keys_rpc_reply: str | None = None, *, prefix: str = "cb") -> str:
    return keys_rpc_reply or f"{prefix}:rpc:reply:{new_id()}"


async def wait_reply(redis: Redis, reply_key: str, model: type[M], *, timeout_s: float) -> M:
    """BLPOP in short slices: a client's socket timeout (redis-py defaults to 5 s) must not cut a
    longer wait, and each slice is still one blocking call, not a poll."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RpcTimeout(f"no reply on {reply_key} within {timeout_s:.1f}s")
        popped = await redis.blpop([reply_key], timeout=min(remaining, BLOCK_SLICE_S))
        if popped is not None:
            _, raw = popped
            return decode(model, raw)


async def send_reply(redis: Redis, reply_key: str, reply: BaseModel, *, ttl_s: int = REPLY_TTL_S) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(reply_key, encode(reply))
    pipe.expire(reply_key, ttl_s)
    await pipe.execute()

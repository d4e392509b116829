"""Request/reply over Redis: the request goes on a stream, the reply on a per-request list key.

The requester BLPOPs its reply key with a timeout, so no polling. The replier RPUSHes the reply
and gives the key a TTL, so a reply nobody waits for anymore expires by itself.
"""

from __future__ import annotations

from pydantic import BaseModel
from redis.asyncio import Redis

from codex_broker.libs.contracts import M, decode, encode, new_id

REPLY_TTL_S = 120


class RpcTimeout(TimeoutError):
    """No reply within the timeout: the peer is down, busy, or the request was lost."""


def new_reply_key(keys_rpc_reply: str | None = None, *, prefix: str = "cb") -> str:
    return keys_rpc_reply or f"{prefix}:rpc:reply:{new_id()}"


async def wait_reply(redis: Redis, reply_key: str, model: type[M], *, timeout_s: float) -> M:
    popped = await redis.blpop([reply_key], timeout=timeout_s)
    if popped is None:
        raise RpcTimeout(f"no reply on {reply_key} within {timeout_s:.1f}s")
    _, raw = popped
    return decode(model, raw)


async def send_reply(redis: Redis, reply_key: str, reply: BaseModel, *, ttl_s: int = REPLY_TTL_S) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(reply_key, encode(reply))
    pipe.expire(reply_key, ttl_s)
    await pipe.execute()

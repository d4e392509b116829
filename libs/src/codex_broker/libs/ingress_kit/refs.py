"""Logical message names (`PostPayload.ref`) → the platform message ids a post produced.

The orchestrator updates a message it posted earlier (an approval prompt, once decided) by the
name it gave it, without waiting for the post's reply; the kit remembers the ids under that name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys

REF_TTL_S = 14 * 86400


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MessageRefs:
    def __init__(self, redis: Redis, keys: Keys, platform: str) -> None:
        self.redis = redis
        self.keys = keys
        self.platform = platform

    async def remember(self, ref: str, conversation_id: str, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        key = self.keys.message_ref(self.platform, ref)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={"conversation": conversation_id, "last": message_ids[-1], "all": ",".join(message_ids)},
        )
        pipe.expire(key, REF_TTL_S)
        await pipe.execute()

    async def resolve(self, ref: str) -> tuple[str, str] | None:
        """(conversation id, last message id) of the post named `ref`, if one was made."""
        raw = await self.redis.hgetall(self.keys.message_ref(self.platform, ref))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return fields["conversation"], fields["last"]

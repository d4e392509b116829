"""Posting messages into a thread, resumably: a redelivered action skips the pieces already posted.

Each posted piece's ts is recorded under `keys.outbound_ref("slack", "parts:<id>")` right after
chat.postMessage returns, so a crash between two pieces of a long answer re-posts nothing.
Logical refs (`PostPayload.ref`) map to the message ts for later updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_slack.render import message_blocks
from codex_broker.ingress_slack.slack_api import SlackApi
from codex_broker.libs.contracts import CHANNEL_SCOPE, Button
from codex_broker.libs.keys import Keys

PARTS_TTL_S = 2 * 86400
REF_TTL_S = 14 * 86400


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Poster:
    def __init__(self, api: SlackApi, redis: Redis, keys: Keys) -> None:
        self.api = api
        self.redis = redis
        self.keys = keys

    async def post_pieces(
        self,
        *,
        channel: str,
        thread_ts: str,
        pieces: Sequence[str],
        buttons: Sequence[Button] = (),
        parts_id: str,
    ) -> list[str]:
        """Post `pieces` in order (buttons under the last one); returns every piece's ts."""
        parts_key = self.keys.outbound_ref("slack", f"parts:{parts_id}")
        done = {int(k): _text(v) for k, v in (await self.redis.hgetall(parts_key)).items()}
        timestamps: list[str] = []
        for index, piece in enumerate(pieces):
            if index in done:
                timestamps.append(done[index])
                continue
            last = index == len(pieces) - 1
            blocks = message_blocks(piece, buttons) if last else None
            args: dict[str, Any] = {"channel": channel, "text": piece}
            if thread_ts != CHANNEL_SCOPE:  # workspace mode opens task threads with a top-level post
                args["thread_ts"] = thread_ts
            if blocks:
                args["blocks"] = blocks
            data = await self.api.call("chat.postMessage", **args)
            ts = str(data.get("ts") or "")
            timestamps.append(ts)
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(parts_key, str(index), ts)
            pipe.expire(parts_key, PARTS_TTL_S)
            await pipe.execute()
        return timestamps

    async def remember_ref(self, ref: str, channel: str, timestamps: Sequence[str]) -> None:
        key = self.keys.outbound_ref("slack", f"ref:{ref}")
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"channel": channel, "ts": timestamps[-1], "all": ",".join(timestamps)})
        pipe.expire(key, REF_TTL_S)
        await pipe.execute()

    async def resolve_ref(self, ref: str) -> tuple[str, str] | None:
        raw = await self.redis.hgetall(self.keys.outbound_ref("slack", f"ref:{ref}"))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return fields["channel"], fields["ts"]

"""The web chat's threads and messages in Redis — what the `web` platform *is*.

Every change of a message is one round trip: the record into the thread's hash, the thread's
activity, and the full record onto the feed stream that every browser follows (by SSE, from
the feed id it last saw). A browser so never misses a change across replicas or reconnects,
and applying a record twice is harmless (it replaces the message of that id).
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_web.render import now_ms
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.keys import Keys

CLIENT_ID_TTL_S = 86400
THREAD_LIST_LIMIT = 200


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def message_id_of(number: int) -> str:
    """Zero-padded so that ids sort as strings in the order they were given."""
    return f"w{number:012d}"


class ThreadStore:
    def __init__(self, redis: Redis, keys: Keys, *, feed_maxlen: int = 20_000) -> None:
        self.redis = redis
        self.keys = keys
        self.feed_maxlen = feed_maxlen

    async def new_message_id(self) -> str:
        return message_id_of(int(await self.redis.incr(self.keys.web_message_ids)))

    async def message_id_for_client(self, client_id: str) -> tuple[str, bool]:
        """The id of a browser's send: a new one, or the one its earlier try got (True: new)."""
        candidate = await self.new_message_id()
        key = self.keys.web_client_message(client_id)
        if await self.redis.set(key, candidate, nx=True, ex=CLIENT_ID_TTL_S):
            return candidate, True
        return _text(await self.redis.get(key) or candidate), False

    # ---- threads ---------------------------------------------------------------------------

    async def create_thread(self, root: str, *, title: str, created_by: str) -> None:
        key = self.keys.web_thread(root)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(key, "id", root)
        pipe.hsetnx(key, "title", title)
        pipe.hsetnx(key, "created_by", created_by)
        pipe.hsetnx(key, "created_ms", str(now_ms()))
        await pipe.execute()

    async def thread(self, root: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self.keys.web_thread(root))
        return {_text(k): _text(v) for k, v in raw.items()} or None

    async def threads(self, limit: int = THREAD_LIST_LIMIT) -> list[dict[str, str]]:
        roots = [_text(r) for r in await self.redis.zrevrange(self.keys.web_threads, 0, limit - 1)]
        pipe = self.redis.pipeline(transaction=False)
        for root in roots:
            pipe.hgetall(self.keys.web_thread(root))
        found = []
        for raw in await pipe.execute():
            meta = {_text(k): _text(v) for k, v in raw.items()}
            if meta.get("id"):
                found.append(meta)
        return found

    async def set_status(self, root: str, status: str) -> None:
        key = self.keys.web_thread(root)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"status": status, "updated_ms": str(now_ms())})
        pipe.hgetall(key)
        _, raw = await pipe.execute()
        meta = {_text(k): _text(v) for k, v in raw.items()}
        await self._feed({"thread": root, "thread_meta": meta})

    # ---- messages --------------------------------------------------------------------------

    async def put(self, record: dict[str, Any]) -> None:
        root, at = str(record["thread"]), now_ms()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.web_messages(root), str(record["id"]), json.dumps(record))
        pipe.zadd(self.keys.web_threads, {root: at})
        pipe.hset(self.keys.web_thread(root), "updated_ms", str(at))
        pipe.xadd(
            self.keys.web_feed,
            {DATA_FIELD: json.dumps({"thread": root, "message": record})},
            maxlen=self.feed_maxlen,
            approximate=True,
        )
        await pipe.execute()

    async def get(self, root: str, message_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self.keys.web_messages(root), message_id)
        return json.loads(raw) if raw else None

    async def messages(self, root: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.web_messages(root))
        return [json.loads(raw[k]) for k in sorted(raw, key=_text)]

    # ---- the feed ----------------------------------------------------------------------------

    async def feed_position(self) -> str:
        last = await self.redis.xrevrange(self.keys.web_feed, count=1)
        return _text(last[0][0]) if last else "0-0"

    async def read_feed(self, since: str, *, block_ms: int) -> list[tuple[str, dict[str, Any]]]:
        response: Any = await self.redis.xread({self.keys.web_feed: since}, count=200, block=block_ms)
        entries = []
        for _, items in response or []:
            for entry_id, fields in items:
                raw = fields.get(DATA_FIELD.encode()) or fields.get(DATA_FIELD)
                entries.append((_text(entry_id), json.loads(raw)))
        return entries

    async def _feed(self, body: dict[str, Any]) -> None:
        await self.redis.xadd(
            self.keys.web_feed, {DATA_FIELD: json.dumps(body)}, maxlen=self.feed_maxlen, approximate=True
        )

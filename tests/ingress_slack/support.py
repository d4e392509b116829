"""Helpers for the ingress-slack integration tests: read the inbound streams, publish outbound actions."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.bus import StreamBus
from codex_broker.libs.contracts import InboundEvent, OutboundAction, decode
from codex_broker.libs.keys import Keys

CHANNEL = "C0DEV"


async def inbound_events(redis: Redis, keys: Keys) -> list[InboundEvent]:
    events = []
    for shard in range(keys.shard_count):
        for _, fields in await redis.xrange(keys.inbound_stream(shard)):
            events.append(decode(InboundEvent, fields[b"data"]))
    return events


async def inbound_entries(redis: Redis, keys: Keys) -> list[tuple[str, InboundEvent]]:
    entries = []
    for shard in range(keys.shard_count):
        for entry_id, fields in await redis.xrange(keys.inbound_stream(shard)):
            entries.append((entry_id.decode(), decode(InboundEvent, fields[b"data"])))
    return entries


async def publish(redis: Redis, keys: Keys, action: OutboundAction) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    await bus.publish(keys.outbound_stream("slack"), action)


def action(payload: dict[str, Any], *, root: str = "1700000000.000100", **fields: Any) -> OutboundAction:
    return OutboundAction.model_validate(
        {
            "platform": "slack",
            "conversation_id": fields.pop("conversation_id", CHANNEL),
            "root_message_id": root,
            "payload": payload,
            **fields,
        }
    )


async def dead_letters(redis: Redis, keys: Keys) -> list[dict[str, str]]:
    rows = await redis.xrange(keys.dead_letter_stream)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]

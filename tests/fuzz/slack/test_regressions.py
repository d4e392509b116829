"""Minimal regression tests for what the Slack fuzz run found.

1. A payload our listener (or Bolt's own matching) cannot handle — a message whose `text` is a
   number, a shortcut without a callback_id — raised, so it was never acked: Slack re-sent it
   and then dropped it, recorded nowhere. Now it is acked and dead-lettered with the reason.
   Bolt itself can raise on a payload before any listener or error handler runs (`"event": null`
   while it builds a listener's arguments); `GuardedSocketModeHandler` dead-letters and acks it.
2. A message whose text holds a lone UTF-16 surrogate (half of a cut emoji, valid JSON) could not
   be serialized: never acked, lost the same way. Now it is stored with U+FFFD in its place.
"""

from __future__ import annotations

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.fakes.fake_slack import FakeSlack
from tests.fuzz.slack.test_envelopes import (
    acked_within,
    dead_letter_count,
    deliver,
    ingress,
    sentinel,
    stored,
)
from tests.ingress_slack.conftest import Ingress

__all__ = ["ingress"]


async def test_message_with_a_number_as_text_is_acked_and_dead_lettered(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys
) -> None:
    event = {
        "type": "message",
        "channel": "C1",
        "user": "U1",
        "ts": "1.000001",
        "channel_type": "im",
        "text": 5,
    }
    slack.push_event(event, "EvNUMBER")
    assert await acked_within(slack, "EvNUMBER")
    assert await dead_letter_count(redis, keys) == 1
    rows = await redis.xrange(keys.dead_letter_stream)
    assert b"TypeError" in rows[0][1][b"reason"]
    await sentinel(slack, redis, keys, 1)


async def test_shortcut_without_callback_id_is_acked(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys
) -> None:
    deliver(slack, "interactive", {"type": "shortcut"}, "shortcut:1")
    assert await acked_within(slack, "shortcut:1")
    assert await dead_letter_count(redis, keys) == 1
    await sentinel(slack, redis, keys, 2)


async def test_event_callback_with_a_null_event_is_acked(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys
) -> None:
    payload = {"type": "event_callback", "team_id": "T0FAKE", "event_id": "EvNULL", "event": None}
    deliver(slack, "events_api", payload, "EvNULL")
    assert await acked_within(slack, "EvNULL")
    assert await dead_letter_count(redis, keys) == 1
    await sentinel(slack, redis, keys, 3)


async def test_lone_surrogate_in_text_is_stored_with_a_replacement_character(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys
) -> None:
    event = {
        "type": "message",
        "channel": "D1",
        "user": "U1",
        "ts": "2.000001",
        "channel_type": "im",
        "text": "cut emoji \ud83d here",
    }
    slack.push_event(event, "EvSURROGATE")
    assert await acked_within(slack, "EvSURROGATE")
    [inbound] = (await stored(redis, keys)).values()
    assert inbound.text == "cut emoji \ufffd here"

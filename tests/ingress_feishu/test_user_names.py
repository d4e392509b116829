"""Senders' display names: contact/v3 user get on the fake Feishu, cached in Redis, never in the way.

A failed or slow lookup must not cost the event: it goes out with the id as the name.
"""

from __future__ import annotations

import pytest

from tests.helpers import wait_for
from tests.ingress_feishu.conftest import RunningIngress


async def test_the_senders_name_is_in_the_event_and_cached(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    fake.set_user("ou_alice", "Alice Zhang")

    fake.push_message(chat_id="oc_g", text="first", mention_bot=True, sender_open_id="ou_alice")
    [first] = await ingress.wait_inbound(1)
    fake.push_message(chat_id="oc_g", text="second", mention_bot=True, sender_open_id="ou_alice")
    events = await ingress.wait_inbound(2)

    assert first.actor.id == "ou_alice" and first.actor.display_name == "Alice Zhang"
    assert [e.actor.display_name for e in events] == ["Alice Zhang", "Alice Zhang"]
    [lookup] = fake.calls("contact.user.get")  # the second event was served from the cache
    assert lookup["path"].endswith("/ou_alice") and lookup["query"]["user_id_type"] == "open_id"
    cache_key = ingress.keys.user_name("feishu", "ou_alice")
    assert await ingress.redis.get(cache_key) == b"Alice Zhang"
    assert 0 < await ingress.redis.ttl(cache_key) <= ingress.settings.feishu_user_cache_ttl_s


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, 1), (400, 41050)],  # a server error; an error code (e.g. a user outside the app's range)
)
async def test_a_failed_lookup_falls_back_to_the_id(start_ingress, status: int, code: int) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    fake.set_user("ou_bob", "Bob")
    fake.fail("contact.user.get", code, status=status)

    sent = fake.push_message(chat_id="oc_g", text="hello", mention_bot=True, sender_open_id="ou_bob")
    [event] = await ingress.wait_inbound(1)

    assert event.actor.id == "ou_bob" and event.actor.display_name == "ou_bob"
    assert event.text == "hello"
    await wait_for(lambda: sent["event_id"] in fake.acked_event_ids(), what="the ack")
    # the failure is remembered for a while: the next message does not try again at once
    fake.push_message(chat_id="oc_g", text="again", mention_bot=True, sender_open_id="ou_bob")
    events = await ingress.wait_inbound(2)
    assert events[1].actor.display_name == "ou_bob"
    assert len(fake.calls("contact.user.get")) == 1


async def test_a_lookup_that_hangs_does_not_hold_the_event(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    fake.set_user("ou_carol", "Carol")
    fake.delay("contact.user.get", 60)  # far longer than Feishu's ack window

    sent = fake.push_message(chat_id="oc_g", text="hi", mention_bot=True, sender_open_id="ou_carol")
    [event] = await ingress.wait_inbound(1)

    assert event.actor.display_name == "ou_carol"
    await wait_for(lambda: sent["event_id"] in fake.acked_event_ids(), what="the ack")
    fake.release()

"""Garbage entries on `outbound:slack`, consumed by ingress-slack's real outbound consumer
(fake Slack, real Redis): each is dead-lettered with a reason, and the post written after the
garbage reaches the fake Slack."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest_asyncio
from hypothesis import given
from redis.asyncio import Redis

from codex_broker.libs.contracts import OutboundAction, PostPayload, encode
from codex_broker.libs.keys import GROUP_INGRESS, Keys
from tests.fakes.fake_slack import FakeSlack
from tests.fuzz.support import fuzz_settings
from tests.fuzz.test_streams import add, assert_dead_lettered, garbage_entries
from tests.helpers import wait_for
from tests.ingress_slack.conftest import Ingress, StartIngress

_n = itertools.count(1)
CHANNEL = "C0OUT"
ROOT = "1700000000.000100"
VALID_ACTION = json.loads(
    encode(
        OutboundAction(
            platform="slack", conversation_id=CHANNEL, root_message_id=ROOT, payload=PostPayload(text="hi")
        )
    )
)


@pytest_asyncio.fixture
async def ingress(start_ingress: StartIngress) -> Ingress:
    return await start_ingress()


@fuzz_settings()
@given(garbage=garbage_entries(OutboundAction, VALID_ACTION))
async def test_outbound_garbage_is_dead_lettered(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    stream = keys.outbound_stream("slack")
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    text = f"still posting {next(_n)}"
    action = OutboundAction(
        platform="slack", conversation_id=CHANNEL, root_message_id=ROOT, payload=PostPayload(text=text)
    )
    await add(redis, stream, {"data": encode(action)})
    await wait_for(
        lambda: any(m["text"] == text for m in slack.messages(CHANNEL, ROOT, from_bot=True)),
        what="the post after the garbage",
    )
    await assert_dead_lettered(redis, keys, stream, GROUP_INGRESS, OutboundAction, entries)
    assert not ingress.task.done(), ingress.task.exception()

"""Garbage entries on `outbound:feishu`, consumed by ingress-feishu's real outbound consumer
(fake Feishu, real Redis): each is dead-lettered with a reason, and the post written after the
garbage reaches the fake Feishu."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest_asyncio
from hypothesis import given
from redis.asyncio import Redis

from codex_broker.libs.contracts import OutboundAction, PostPayload, encode
from codex_broker.libs.keys import GROUP_INGRESS, Keys
from tests.fuzz.support import fuzz_settings
from tests.fuzz.test_streams import add, assert_dead_lettered, garbage_entries
from tests.helpers import wait_for
from tests.ingress_feishu.conftest import RunningIngress

_n = itertools.count(1)
CHAT = "oc_out"
VALID_ACTION = json.loads(
    encode(
        OutboundAction(
            platform="feishu", conversation_id=CHAT, root_message_id=CHAT, payload=PostPayload(text="hi")
        )
    )
)


@pytest_asyncio.fixture
async def ingress(start_ingress: Any) -> RunningIngress:
    return await start_ingress(connect=False)  # only the outbound side is under test


@fuzz_settings()
@given(garbage=garbage_entries(OutboundAction, VALID_ACTION))
async def test_outbound_garbage_is_dead_lettered(
    ingress: RunningIngress, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    stream = keys.outbound_stream("feishu")
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    text = f"still posting {next(_n)}"
    action = OutboundAction(
        platform="feishu", conversation_id=CHAT, root_message_id=CHAT, payload=PostPayload(text=text)
    )
    await add(redis, stream, {"data": encode(action)})
    await wait_for(
        lambda: any(
            text in json.dumps(m.get("content"), ensure_ascii=False) for m in ingress.fake.bot_messages(CHAT)
        ),
        what="the post after the garbage",
    )
    await assert_dead_lettered(redis, keys, stream, GROUP_INGRESS, OutboundAction, entries)
    assert not ingress.task.done(), ingress.task.exception()

"""The outbound claim is a short lease, renewed while the action runs: a dead replica's claim lapses
soon and the action is then done once; a slow action keeps its claim past the lease length.

Two kit `OutboundExecutor`s over the `FeishuPlatform` play two replicas (real Redis, real
lark-oapi, the fake Feishu), with a 1 s lease so that "past the lease" and "lapses" happen
within a test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.ingress_feishu.adapter import FeishuPlatform
from codex_broker.ingress_feishu.api import FeishuApi
from codex_broker.ingress_feishu.view import FeishuViews
from codex_broker.libs.bus import Delivery
from codex_broker.libs.contracts import OutboundAction, OutboundResult, PostPayload, encode
from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.ingress_kit.live_view import LiveViews
from codex_broker.libs.ingress_kit.outbound import OutboundExecutor
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import wait_reply
from tests.fakes.fake_feishu import FakeFeishu
from tests.helpers import wait_for

LEASE_MS = 1000
RENEW_S = 0.25


def replica(fake: FakeFeishu, redis: Redis, keys: Keys, data_root: Path) -> OutboundExecutor:
    api = FeishuApi(app_id=fake.app_id, app_secret=fake.app_secret, domain=fake.url)
    platform = FeishuPlatform(
        api, redis, keys, FeishuViews(api, redis, keys), data_root=data_root, bot_open_id=fake.bot_open_id
    )
    return OutboundExecutor(
        platform, redis, keys, LiveViews(platform, redis, keys), lease_ms=LEASE_MS, renew_s=RENEW_S
    )


def delivery(action: OutboundAction, keys: Keys, deliveries: int = 1) -> Delivery:
    return Delivery(
        stream=keys.outbound_stream("feishu"), entry_id="1-0", data=encode(action), deliveries=deliveries
    )


def post(root: str, text: str) -> OutboundAction:
    return OutboundAction(
        platform="feishu", conversation_id="oc_g", root_message_id=root, payload=PostPayload(text=text)
    )


async def test_a_dead_replicas_claim_lapses_and_the_action_is_done_once(
    fake: FakeFeishu, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    root = fake.push_message(chat_id="oc_g", text="hi")["message_id"]
    action = post(root, "the answer")
    guard = Idempotency(redis, keys, "outbound")
    # replica A claimed the action and died before posting: nobody renews its lease
    assert (await guard.claim(action.action_id, lease_ms=LEASE_MS)).status == "new"

    survivor = replica(fake, redis, keys, tmp_path)
    await survivor.handle(delivery(action, keys, deliveries=2))  # waits the lease out, then posts

    assert len(fake.bot_messages("oc_g")) == 1
    assert (await guard.claim(action.action_id)).status == "done"
    await survivor.handle(delivery(action, keys, deliveries=3))  # yet another redelivery
    assert len(fake.bot_messages("oc_g")) == 1


async def test_a_slow_action_keeps_its_claim_and_the_other_replica_waits(
    fake: FakeFeishu, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    root = fake.push_message(chat_id="oc_g", text="hi")["message_id"]
    action = post(root, "a slow post")
    claim_key = keys.idempotency("outbound", action.action_id)
    fake.delay("message.reply", 30)  # held until release()
    first, second = replica(fake, redis, keys, tmp_path), replica(fake, redis, keys, tmp_path)

    slow = asyncio.create_task(first.handle(delivery(action, keys)))
    await wait_for(lambda: fake.calls("message.reply"), what="the post to reach Feishu")
    await asyncio.sleep(2.5 * LEASE_MS / 1000)  # well past the lease length
    assert await redis.get(claim_key) == b"pending", "the running action lost its claim"
    assert 0 < await redis.pttl(claim_key) <= LEASE_MS

    # the entry is redelivered to another replica meanwhile: it must neither post nor drop it
    reply_to = keys.rpc_reply("second-replica")
    redelivered = action.model_copy(update={"reply_to": reply_to})
    waiting = asyncio.create_task(second.handle(delivery(redelivered, keys, deliveries=2)))
    await asyncio.sleep(0.3)  # it finds the claim pending and waits
    fake.release()
    await asyncio.wait_for(slow, timeout=15)
    await asyncio.wait_for(waiting, timeout=15)

    [message] = fake.bot_messages("oc_g")
    replayed = await wait_reply(redis, reply_to, OutboundResult, timeout_s=5)
    assert replayed.ok and replayed.message_ids == [message["message_id"]]
    assert len(fake.calls("message.reply")) == 1

"""Workspace mode's Discord side in-process: the real discord.py against the fake Discord, real
Redis, the kit's executor. A home channel's messages are forwarded without a mention; a post at
the channel scope opens a task thread and answers with its id; the task's coordinates (home,
thread) post into that thread — from another replica too — and messages typed there come back
with them; the operator's coordinates post top-level in the home channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.ingress_discord.adapter import DiscordPlatform
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    InboundEvent,
    OutboundAction,
    OutboundResult,
    PostPayload,
    decode,
    encode,
)
from codex_broker.libs.ingress_kit.platform import Target
from codex_broker.libs.keys import session_key_of
from codex_broker.libs.rpc import wait_reply
from tests.fakes.fake_discord import FakeDiscord
from tests.helpers import wait_for
from tests.ingress_discord.test_discord_service import Running, running_service


@pytest_asyncio.fixture
async def home_running(
    redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Running, str]]:
    with FakeDiscord() as fake:
        home = fake.add_channel("workspace")
        settings = {"workspace_home_channels": [f"discord:{home}", "slack:C1"]}
        async with running_service(redis, redis_url, key_prefix, tmp_path, fake, **settings) as running:
            yield running, home


async def events_of(running: Running, conversation: str, root: str, count: int) -> list[InboundEvent]:
    stream = running.keys.inbound_stream_for(session_key_of("discord", conversation, root))

    async def enough() -> list[InboundEvent] | None:
        entries = await running.redis.xrange(stream)
        found = [decode(InboundEvent, fields[DATA_FIELD.encode()]) for _, fields in entries]
        found = [e for e in found if (e.conversation_id, e.root_message_id) == (conversation, root)]
        return found if len(found) >= count else None

    return await wait_for(enough, timeout_s=30, interval_s=0.05, what=f"{count} events at {root}")


async def post(
    running: Running, conversation: str, root: str, text: str, *, action_id: str, reply: bool = False
) -> OutboundResult | None:
    reply_to = running.keys.rpc_reply(f"test-{action_id}") if reply else None
    action = OutboundAction(
        action_id=action_id,
        platform="discord",
        conversation_id=conversation,
        root_message_id=root,
        session_key=session_key_of("discord", conversation, root),
        payload=PostPayload(text=text),
        reply_to=reply_to,
    )
    await running.redis.xadd(running.keys.outbound_stream("discord"), {DATA_FIELD: encode(action)})
    if reply_to is None:
        return None
    return await wait_reply(running.redis, reply_to, OutboundResult, timeout_s=30)


def texts(fake: FakeDiscord, channel: str) -> list[str]:
    return [m["content"] for m in fake.bot_messages(channel)]


async def test_home_channel_messages_come_without_a_mention_and_open_no_thread(
    home_running: tuple[Running, str],
) -> None:
    running, home = home_running
    fake = running.fake
    plain = fake.user_message(home, "alice", "please delegate the report")
    mention = fake.user_message(home, "bob", "and this one", mention=True)
    [first] = await events_of(running, home, plain["id"], 1)
    assert first.message_id == plain["id"] and first.text == "please delegate the report"
    [second] = await events_of(running, home, mention["id"], 1)
    assert second.text == "and this one" and second.is_mention
    assert fake.thread(plain["id"]) is None and fake.thread(mention["id"]) is None
    fake.user_message(fake.channel_id, "alice", "elsewhere, unmentioned")  # not a home: not ours
    sentinel = fake.user_message(fake.channel_id, "alice", "sentinel", mention=True)
    await events_of(running, sentinel["id"], sentinel["id"], 1)
    entries = await running.redis.xrange(
        running.keys.inbound_stream_for(session_key_of("discord", fake.channel_id, fake.channel_id))
    )
    assert not [e for e in entries if b"elsewhere" in e[1][DATA_FIELD.encode()]]


async def test_a_channel_scope_post_opens_a_task_thread_whose_coordinates_post_into_it(
    home_running: tuple[Running, str], redis: Redis
) -> None:
    running, home = home_running
    fake = running.fake
    result = await post(
        running, home, CHANNEL_SCOPE, "🧵 *Delegation `d1`*: the report", action_id="t1", reply=True
    )
    assert result is not None and result.ok
    [thread_id] = result.message_ids
    thread = fake.thread(thread_id)
    assert (
        thread is not None
        and thread["parent_id"] == home
        and thread["name"] == "🧵 Delegation d1: the report"
    )
    assert texts(fake, home) == ["🧵 *Delegation `d1`*: the report"]  # top-level in the home channel

    again = await post(
        running, home, CHANNEL_SCOPE, "🧵 *Delegation `d1`*: the report", action_id="t1", reply=True
    )
    assert again is not None and again.message_ids == [thread_id]  # a redelivery opens nothing new
    assert fake.count("POST", "/threads") == 1

    await post(running, home, thread_id, "working on it", action_id="t2")
    await running.until(lambda: texts(fake, thread_id) == ["working on it"], "the task's post in its thread")

    # another replica, its cache empty: the thread's record in Redis says where (home, thread) goes
    other = DiscordPlatform(
        running.service.platform.rest,  # type: ignore[union-attr]
        redis,
        running.keys,
        data_root=Path("/nonexistent"),
        max_upload_bytes=1,
        download_max_bytes=1,
        download_hosts=frozenset(),
        archive_minutes=60,
    )
    assert await other.channel_of(Target(home, thread_id)) == thread_id
    operator_root = fake.user_message(home, "alice", "hello operator")["id"]
    assert await other.channel_of(Target(home, operator_root)) == home  # the operator stays top-level
    await post(running, home, operator_root, "Delegated it.", action_id="t3")
    await running.until(lambda: "Delegated it." in texts(fake, home), "the operator's post")

    typed = fake.user_message(thread_id, "bob", "add a chart")  # no mention in the task thread
    [event] = await events_of(running, home, thread_id, 1)
    assert event.message_id == typed["id"] and event.text == "add a chart"


async def test_codex_commands_and_clicks_in_the_home_channel_are_at_the_channel_scope(
    home_running: tuple[Running, str],
) -> None:
    running, home = home_running
    fake = running.fake
    listed = fake.slash(home, "alice", "threads")
    [command] = await events_of(running, home, CHANNEL_SCOPE, 1)
    assert command.text == "/threads" and command.reply_ephemeral  # the orchestrator finds the operator
    await running.until(lambda: fake.interaction(listed)["callbacks"], "the command acked")
    assert fake.interaction(listed)["callbacks"][0]["data"]["flags"] == 64

    bot_post = await post(running, home, CHANNEL_SCOPE, "🧵 *Delegation `d2`*", action_id="t4", reply=True)
    assert bot_post is not None
    clicked = fake.click(home, bot_post.message_ids[0], "cb:open_thread:d2", "alice")
    events = await events_of(running, home, CHANNEL_SCOPE, 2)
    click: Any = events[1]
    assert click.kind == "action" and click.action.action == "open_thread" and click.action.value == "d2"
    assert click.reply_ephemeral  # answered to the presser alone
    await running.until(lambda: fake.interaction(clicked)["callbacks"], "the click acked")
    assert fake.interaction(clicked)["callbacks"][0] == {"type": 5, "data": {"flags": 64}}

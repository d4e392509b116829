"""ingress-discord in-process against the fake Discord: the real discord.py (gateway, HTTP
client with its rate-limit handling), real Redis, the kit's executor on `outbound:discord`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.service import DiscordService
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import (
    Button,
    DownloadPayload,
    EphemeralPayload,
    InboundEvent,
    OutboundAction,
    OutboundResult,
    PostPayload,
    ProgressPayload,
    UploadPayload,
    decode,
    encode,
)
from codex_broker.libs.keys import Keys, session_key_of
from tests.fakes.fake_discord import FakeDiscord
from tests.helpers import wait_for


@dataclass
class Running:
    fake: FakeDiscord
    service: DiscordService
    redis: Redis
    keys: Keys

    async def events(self, channel: str) -> list[InboundEvent]:
        stream = self.keys.inbound_stream_for(session_key_of("discord", channel, channel))
        entries = await self.redis.xrange(stream)
        found = [decode(InboundEvent, fields[DATA_FIELD.encode()]) for _, fields in entries]
        return [e for e in found if e.conversation_id == channel]

    async def wait_events(self, channel: str, count: int) -> list[InboundEvent]:
        async def enough() -> list[InboundEvent] | None:
            found = await self.events(channel)
            return found if len(found) >= count else None

        return await wait_for(enough, timeout_s=30, interval_s=0.05, what=f"{count} events in {channel}")

    async def send(self, channel: str, payload: Any, action_id: str | None = None) -> OutboundAction:
        action = OutboundAction(
            platform="discord",
            conversation_id=channel,
            root_message_id=channel,
            session_key=session_key_of("discord", channel, channel),
            payload=payload,
            **({"action_id": action_id} if action_id else {}),
        )
        await self.redis.xadd(self.keys.outbound_stream("discord"), {DATA_FIELD: encode(action)})
        return action

    async def until(self, probe: Any, what: str) -> Any:
        async def check() -> Any:
            return await asyncio.to_thread(probe)

        return await wait_for(check, timeout_s=30, interval_s=0.05, what=what)


@contextlib.asynccontextmanager
async def running_service(
    redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path, fake: FakeDiscord, **settings_: Any
) -> AsyncIterator[Running]:
    """ingress-discord's two loops in this process against `fake` (started), until the block ends."""
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        shard_count=4,
        data_root=tmp_path / "data",
        discord_progress_interval_s=0.2,
        outbound_block_ms=100,
        claim_idle_ms=2000,
        **{k.lower(): v for k, v in fake.env.items()},
        **settings_,
    )
    service = DiscordService(settings, redis)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(service.run_gateway(stop)),
        asyncio.create_task(service.run_outbound(stop)),
    ]
    try:
        await asyncio.to_thread(fake.wait_connected)
        await wait_for(service.ready, timeout_s=30, interval_s=0.05, what="ready")
        yield Running(fake, service, redis, settings.keys)
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 15)


@pytest_asyncio.fixture
async def running(redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Running]:
    with FakeDiscord() as fake:
        async with running_service(redis, redis_url, key_prefix, tmp_path, fake) as service:
            yield service


async def test_a_mention_opens_a_thread_and_a_session_replies_continue_it(running: Running) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "fix the flaky test", mention=True)
    thread = await running.until(lambda: fake.thread(sent["id"]), "the task thread")
    assert thread["parent_id"] == fake.channel_id and "fix the flaky test" in thread["name"]
    [first] = await running.wait_events(sent["id"], 1)
    assert first.root_message_id == sent["id"] and first.message_id == sent["id"]
    assert first.text == "fix the flaky test" and first.is_mention and first.actor.display_name == "Alice"

    reply = fake.user_message(thread["id"], "bob", "and the other one")  # no mention needed in the thread
    events = await running.wait_events(thread["id"], 2)
    assert events[1].message_id == reply["id"] and events[1].text == "and the other one"
    assert not events[1].is_mention

    fake.user_message(fake.other_channel_id, "alice", "not for the bot")  # no mention: not ours
    dm = fake.dm_channel("bob")
    fake.user_message(dm, "bob", "hello in private")
    [direct] = await running.wait_events(dm, 1)
    assert direct.is_direct and direct.root_message_id == dm
    assert await running.events(fake.other_channel_id) == []


async def test_posts_split_at_2000_characters_with_fences_whole_and_buttons_on_the_last(
    running: Running,
) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "long answer please", mention=True)
    await running.wait_events(sent["id"], 1)
    code = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(120)) + "\n```"
    text = "intro " * 250 + "\n" + code + "\nthe end"
    stop = Button(action="stop", label="Stop", value="run1", style="danger")
    action = await running.send(sent["id"], PostPayload(text=text, buttons=[stop]))
    messages = await running.until(
        lambda: (m := fake.bot_messages(sent["id"])) and "the end" in m[-1]["content"] and m, "the split post"
    )
    assert all(len(m["content"]) <= 2000 for m in messages) and len(messages) >= 2
    assert all(m["content"].count("```") % 2 == 0 for m in messages)
    assert [m["components"] != [] for m in messages] == [False] * (len(messages) - 1) + [True]
    assert messages[-1]["components"][0]["components"][0]["custom_id"] == "cb:stop:run1"
    # a redelivery of the same action posts nothing new
    await running.send(sent["id"], action.payload, action_id=action.action_id)
    await asyncio.sleep(0)
    assert len(fake.bot_messages(sent["id"])) == len(messages)


async def test_the_live_view_survives_a_429_storm_and_the_answer_arrives_once(running: Running) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "go", mention=True)
    await running.wait_events(sent["id"], 1)
    fake.rate_limit(12, retry_after=0.05)  # more than discord.py's five tries for one call
    for seq in range(6):
        await running.send(
            sent["id"],
            ProgressPayload(
                progress_id="p1",
                seq=seq,
                phase="start" if seq == 0 else "update",
                activity="Working",
                answer_text="partial " * seq,
                run_id="run1",
            ),
        )
    await running.send(
        sent["id"],
        ProgressPayload(
            progress_id="p1",
            seq=9,
            phase="finish",
            outcome="completed",
            final_text="The answer.",
            run_id="run1",
        ),
    )
    await running.until(
        lambda: any(m["content"] == "The answer." for m in fake.bot_messages(sent["id"])), "the answer"
    )
    messages = fake.bot_messages(sent["id"])
    assert [m["content"] for m in messages].count("The answer.") == 1
    view = messages[0]
    assert view["content"].startswith("**Done**") and view["components"] == []
    assert fake.count("POST", "/messages", status=429) + fake.count("PATCH", "/messages", status=429) >= 1


async def test_stop_button_and_codex_command_are_stored_then_acked(running: Running) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "start", mention=True)
    await running.wait_events(sent["id"], 1)
    await running.send(
        sent["id"], PostPayload(text="working", buttons=[Button(action="stop", label="Stop", value="run7")])
    )
    [post] = await running.until(lambda: fake.bot_messages(sent["id"]) or None, "the post")
    interaction = fake.click(sent["id"], post["id"], "cb:stop:run7", "alice")
    events = await running.wait_events(sent["id"], 2)
    assert events[1].kind == "action" and events[1].action is not None
    assert events[1].action.action == "stop" and events[1].action.run_id == "run7"
    acked = await running.until(lambda: fake.interaction(interaction)["callbacks"] or None, "the ack")
    assert acked == [{"type": 6}]

    command = fake.slash(sent["id"], "bob", "status")
    events = await running.wait_events(sent["id"], 3)
    assert (
        events[2].text == "/status" and events[2].reply_ephemeral and events[2].root_message_id == sent["id"]
    )
    acked = await running.until(lambda: fake.interaction(command)["callbacks"] or None, "the deferral")
    assert acked == [{"type": 5, "data": {"flags": 64}}]
    await running.send(sent["id"], EphemeralPayload(user_id=fake.user_id("bob"), text="Idle."))
    followups = await running.until(lambda: fake.interaction(command)["followups"] or None, "the follow-up")
    assert followups[0]["content"] == "Idle." and followups[0]["flags"] == 64
    assert fake.commands and fake.commands[0]["name"] == "codex"

    approve = Button(action="approve", label="Approve", value="run7:req-3", style="primary")
    deny = Button(action="deny", label="Deny", value="run7:req-3", style="danger")
    await running.send(sent["id"], PostPayload(text="Run `rm -rf build`?", buttons=[approve, deny]))
    prompt = await running.until(
        lambda: next((m for m in fake.bot_messages(sent["id"]) if "rm -rf" in m["content"]), None),
        "the prompt",
    )
    ids = [b["custom_id"] for b in prompt["components"][0]["components"]]
    assert ids == ["cb:approve:run7:req-3", "cb:deny:run7:req-3"]
    fake.click(sent["id"], prompt["id"], ids[0], "alice")
    events = await running.wait_events(sent["id"], 4)
    assert events[3].action is not None and events[3].action.action == "approve"
    assert (events[3].action.run_id, events[3].action.request_id) == ("run7", "req-3")


async def test_messages_missed_while_disconnected_are_backfilled(running: Running) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "start", mention=True)
    thread = await running.until(lambda: fake.thread(sent["id"]), "the task thread")
    await running.wait_events(thread["id"], 1)
    fake.hold()
    fake.drop(resume=False)  # the next RESUME is refused: a new session, nothing replayed
    await running.until(lambda: not fake.connected(), "the drop")
    missed = fake.user_message(thread["id"], "alice", "sent while the bot was away")
    fake.release()
    await asyncio.to_thread(fake.wait_connected, 60, 2)
    events = await running.wait_events(thread["id"], 2)
    assert events[1].message_id == missed["id"] and events[1].text == "sent while the bot was away"
    assert fake.invalidated >= 1
    # the bot's own messages and what was stored already are not stored again
    await asyncio.sleep(0.2)
    assert len(await running.events(thread["id"])) == 2


async def test_attachments_in_are_downloaded_into_the_workspace_and_files_go_out(running: Running) -> None:
    fake = running.fake
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    sent = fake.user_message(
        fake.channel_id, "alice", "look at this", mention=True, attachments=[("shot.png", png, "image/png")]
    )
    [event] = await running.wait_events(sent["id"], 1)
    [attachment] = event.attachments
    assert attachment.is_image and attachment.name == "shot.png" and attachment.size == len(png)

    data_root = running.service.settings.data_root
    workspace = data_root / "sessions" / "s1" / "workspace"
    reply = running.keys.rpc_reply("dl-1")
    action = OutboundAction(
        platform="discord",
        conversation_id=sent["id"],
        root_message_id=sent["id"],
        payload=DownloadPayload(attachments=[attachment], dest_dir=str(workspace / "attachments")),
        reply_to=reply,
    )
    await running.redis.xadd(running.keys.outbound_stream("discord"), {DATA_FIELD: encode(action)})
    raw = await running.redis.blpop([reply], timeout=30)
    assert raw is not None
    result = decode(OutboundResult, raw[1])
    assert result.ok and result.files[0].local_path
    assert await asyncio.to_thread(Path(result.files[0].local_path).read_bytes) == png

    outbox = data_root / "outbox" / "a1"
    outbox.mkdir(parents=True)
    (outbox / "report.txt").write_text("the report")
    await running.send(sent["id"], UploadPayload(path=str(outbox / "report.txt"), initial_comment="here"))
    posted = await running.until(
        lambda: next((m for m in fake.bot_messages(sent["id"]) if m["attachments"]), None), "the upload"
    )
    assert posted["content"] == "here" and posted["attachments"][0]["filename"] == "report.txt"
    assert fake.attachments[posted["attachments"][0]["id"]] == b"the report"

    # a file outside the allowed roots is refused, not read
    secret = data_root / "secrets" / "token"
    secret.parent.mkdir(parents=True)
    secret.write_text("nope")
    before = fake.count("POST", f"/channels/{sent['id']}/messages")
    await running.send(sent["id"], UploadPayload(path=str(secret)))
    dead = await wait_for(
        lambda: running.redis.xlen(running.keys.dead_letter_stream),
        timeout_s=30,
        interval_s=0.05,
        what="dead letter",
    )
    assert dead >= 1 and fake.count("POST", f"/channels/{sent['id']}/messages") == before


async def test_a_resumed_session_gets_what_it_missed_replayed_and_stores_it_once(running: Running) -> None:
    fake = running.fake
    sent = fake.user_message(fake.channel_id, "alice", "start", mention=True)
    thread = await running.until(lambda: fake.thread(sent["id"]), "the task thread")
    await running.wait_events(thread["id"], 1)
    fake.hold()
    fake.drop(resume=True)
    await running.until(lambda: not fake.connected(), "the drop")
    missed = fake.user_message(thread["id"], "alice", "sent during the gap")
    fake.release()
    await running.until(lambda: fake.resumes >= 1 and fake.connected(), "a RESUME")
    events = await running.wait_events(thread["id"], 2)
    assert events[1].message_id == missed["id"]
    assert fake.identifies == 1 and fake.invalidated == 0  # resumed, not re-identified
    await asyncio.sleep(0.3)  # the replay and the backfill both saw it: still one event
    assert len(await running.events(thread["id"])) == 2


async def test_an_answer_faster_than_the_deferral_waits_for_it(running: Running) -> None:
    """Discord refuses a follow-up before the interaction is acked; the orchestrator can answer
    first (here the deferral is held by a 429), so the ephemeral waits for the ack."""
    fake = running.fake
    dm = fake.dm_channel("alice")
    fake.rate_limit(1, retry_after=1.0, method="POST")  # the deferral's first try
    command = fake.slash(dm, "alice", "usage")
    await running.wait_events(dm, 1)
    assert fake.interaction(command)["callbacks"] == []  # not acked yet
    await running.send(dm, EphemeralPayload(user_id=fake.user_id("alice"), text="Tokens: 0"))
    followups = await running.until(lambda: fake.interaction(command)["followups"] or None, "the follow-up")
    assert [f["content"] for f in followups] == ["Tokens: 0"]
    assert fake.count("POST", f"/webhooks/{fake.application_id}/", status=404) == 0

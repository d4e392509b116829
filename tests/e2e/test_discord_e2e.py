"""Discord end to end: every service as a process (`codex-broker up`), the fake Discord (in this
process, on loopback) driving the real discord.py in ingress-discord, the fake model as a process,
the real Codex binary. One broker serves the whole module; each test opens its own task thread,
so tests do not see each other's work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis import Redis

from codex_broker.libs.keys import session_key_of
from tests.e2e import harness
from tests.e2e.harness import BrokerProcess
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_model import FakeModelClient, slow_reply, text_reply, user_texts
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.codex]


@dataclass
class World:
    broker: BrokerProcess
    discord: FakeDiscord
    model: FakeModelClient

    def mention(self, text: str, user: str = "alice") -> dict[str, Any]:
        return self.discord.user_message(self.discord.channel_id, user, text, mention=True)

    def thread_text(self, thread: str) -> str:
        return "\n".join(m["content"] for m in self.discord.bot_messages(thread))

    def answers(self, thread: str, text: str) -> int:
        """Bot messages that are exactly `text` (the answer, not the live view's copy of it)."""
        return sum(1 for m in self.discord.bot_messages(thread) if m["content"].strip() == text)

    def stop_button(self, thread: str) -> tuple[str, str] | None:
        for message in self.discord.bot_messages(thread):
            for row in message.get("components") or []:
                for button in row.get("components") or []:
                    if str(button.get("custom_id", "")).startswith("cb:stop:"):
                        return message["id"], button["custom_id"]
        return None

    def model_saw(self, phrase: str) -> list[dict]:
        return [r for r in self.model.requests if any(phrase in t for t in user_texts(r))]

    def session(self, thread: str, conversation: str | None = None) -> dict[str, str]:
        """A session's record: a thread's own (thread, thread), or (conversation, thread)."""
        key = session_key_of("discord", conversation or thread, thread)
        client = Redis.from_url(self.broker.redis_url)
        try:
            raw = client.hgetall(self.broker.keys.session(key))
        finally:
            client.close()
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fake_model_process: FakeModelClient) -> Iterator[World]:
    with FakeDiscord() as discord:
        env = {**discord.env, "SHARD_LEASE_MS": "3000", "SHARD_RENEW_INTERVAL_S": "1"}
        with harness.e2e_broker(tmp_path_factory, "discord-e2e", fake_model_process, env) as broker:
            discord.wait_connected(timeout_s=60)
            yield World(broker=broker, discord=discord, model=fake_model_process)


async def until(probe: Any, what: str, timeout_s: float = 120) -> Any:
    async def check() -> Any:
        return await asyncio.to_thread(probe)

    return await wait_for(check, timeout_s=timeout_s, interval_s=0.2, what=what)


async def test_mention_opens_a_thread_with_a_streamed_answer_and_a_reply_continues_it(world: World) -> None:
    world.model.script(
        text_reply("The flaky test is fixed.", match="fix the flaky test", chunks=4),
        text_reply("You asked me to fix the flaky test.", match="what did I ask"),
    )
    sent = world.mention("fix the flaky test")
    thread = await until(lambda: world.discord.thread(sent["id"]), "the task thread")
    assert thread["parent_id"] == world.discord.channel_id
    await until(lambda: world.answers(sent["id"], "The flaky test is fixed.") == 1, "the answer")
    assert world.discord.typing  # the 'working' indicator while the turn ran
    session = world.session(sent["id"])
    thread_id = session["thread_id"]

    world.discord.user_message(sent["id"], "alice", "what did I ask?")  # no mention in the thread
    await until(
        lambda: world.answers(sent["id"], "You asked me to fix the flaky test.") == 1, "the follow-up"
    )
    assert world.session(sent["id"])["thread_id"] == thread_id  # the same Codex thread
    follow = world.model_saw("what did I ask")[-1]
    assert any("fix the flaky test" in t for t in user_texts(follow))  # the model got the earlier turn
    assert world.answers(sent["id"], "The flaky test is fixed.") == 1  # nothing posted twice


async def test_the_stop_button_interrupts_the_turn(world: World) -> None:
    world.model.script(slow_reply("working " * 80, match="slow job", chunks=80, delay_s=0.25))
    sent = world.mention("slow job please")
    found = await until(lambda: world.stop_button(sent["id"]), "the live view's Stop button")
    message_id, custom_id = found
    interaction = world.discord.click(sent["id"], message_id, custom_id, "alice")
    await until(lambda: world.discord.interaction(interaction)["callbacks"], "the click acked")
    await until(lambda: "Stopped" in world.thread_text(sent["id"]), "Stopped")
    await until(lambda: world.stop_button(sent["id"]) is None, "the Stop button gone")


async def test_codex_command_is_answered_ephemerally(world: World) -> None:
    world.model.script(text_reply("Command thread answer.", match="command thread"))
    sent = world.mention("command thread")
    await until(lambda: world.answers(sent["id"], "Command thread answer.") == 1, "the answer")
    thread_id = world.session(sent["id"])["thread_id"]
    interaction = world.discord.slash(sent["id"], "alice", "status")
    followups = await until(
        lambda: world.discord.interaction(interaction)["followups"] or None, "/codex status"
    )
    assert thread_id in followups[0]["content"] and followups[0]["flags"] == 64
    assert thread_id not in world.thread_text(sent["id"])  # only the asker saw it
    help_ix = world.discord.slash(world.discord.channel_id, "bob", "help")
    [answer] = await until(lambda: world.discord.interaction(help_ix)["followups"] or None, "/codex help")
    assert "`/codex status`" in answer["content"] and "`/status`" not in answer["content"]


async def test_a_429_storm_delays_but_loses_nothing(world: World) -> None:
    world.model.script(text_reply("Through the storm.", match="storm test", chunks=6, delay_s=0.2))
    sent = world.mention("storm test")
    await until(lambda: world.discord.thread(sent["id"]), "the task thread")
    world.discord.rate_limit(40, retry_after=0.2)  # every call for a while; more than discord.py retries
    began = time.monotonic()
    await until(lambda: world.answers(sent["id"], "Through the storm.") == 1, "the answer")
    limited = world.discord.count("POST", "", status=429) + world.discord.count("PATCH", "", status=429)
    print(f"\n429 storm: {limited} calls answered 429, the answer after {time.monotonic() - began:.1f}s")
    assert limited >= 20
    await asyncio.sleep(2)
    assert world.answers(sent["id"], "Through the storm.") == 1


async def test_a_gateway_disconnect_mid_turn_still_delivers_and_backfills(world: World) -> None:
    world.model.script(
        slow_reply("Delivered anyway.", match="disconnect test", chunks=12, delay_s=0.3),
        text_reply("Saw the missed message.", match="sent-while-away-d1"),
    )
    sent = world.mention("disconnect test")
    await until(lambda: world.model_saw("disconnect test"), "the turn reaching the model")
    identified = world.discord.identifies
    world.discord.hold()
    world.discord.drop(resume=False)  # a new session: Discord would not replay what it missed
    await until(lambda: not world.discord.connected(), "the disconnect")
    world.discord.user_message(sent["id"], "alice", "and sent-while-away-d1")
    world.discord.release()
    await until(lambda: world.answers(sent["id"], "Delivered anyway.") == 1, "the answer of the running turn")
    await until(lambda: world.discord.identifies > identified, "a new gateway session")
    await until(lambda: world.model_saw("sent-while-away-d1"), "the missed message reaching the model")
    await until(lambda: "Saw the missed message." in world.thread_text(sent["id"]), "its answer")
    assert len(world.model_saw("sent-while-away-d1")) == 1

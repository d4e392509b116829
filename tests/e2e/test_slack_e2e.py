"""Slack end to end: every service as a process (`codex-broker up`), the fake Slack and the fake
model as processes, the real Codex binary. One broker serves the whole module (one runner, so
one Codex app-server); each test uses its own channels, so tests do not see each other's work."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from codex_broker.libs.keys import session_key_of
from tests.e2e import harness
from tests.e2e.harness import BrokerProcess
from tests.fakes.fake_model import (
    FakeModelClient,
    held_reply,
    slow_reply,
    text_reply,
    tool_call_reply,
    tool_outputs,
    user_texts,
)
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = {"U1": "Alice", "U2": "Bob", "U3": "Cleo", "U9": "Mallory"}
ALLOWED = "U1,U2,U3"


@dataclass
class World:
    broker: BrokerProcess
    slack: FakeSlackProcess
    model: FakeModelClient
    bot: str  # the bot's Slack user id

    def mention(self, channel: str, user: str, text: str, **options: Any) -> Any:
        return self.slack.client.user_message(channel, user, f"<@{self.bot}> {text}", **options)

    def thread_text(self, channel: str, thread_ts: str) -> str:
        """Everything the bot showed in the thread: posts, updates and native streams."""
        streams = {ts: s for ts, s in self.slack.client.streams().items() if s["thread_ts"] == thread_ts}
        parts = [
            m.get("text", "") + json.dumps(m.get("blocks") or [])
            for m in self.slack.client.messages(channel=channel, thread_ts=thread_ts, from_bot=True)
            if not m.get("deleted") and m["ts"] not in streams
        ]
        parts += [s["text"] for s in streams.values()]
        return "\n".join(parts)

    def model_saw(self, phrase: str) -> list[dict]:
        return [r for r in self.model.requests if any(phrase in t for t in user_texts(r))]

    def session(self, channel: str, root: str) -> dict[str, str]:
        client = Redis.from_url(self.broker.redis_url)
        try:
            raw = client.hgetall(self.broker.keys.session(session_key_of("slack", channel, root)))
        finally:
            client.close()
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fake_model_process: FakeModelClient) -> Iterator[World]:
    with start_fake_slack_process() as slack:
        for user_id, name in USERS.items():
            slack.client.add_user(user_id, name.lower(), display_name=name)
        env = {
            **slack.env,
            "ALLOWED_USERS": ALLOWED,
            "SHARD_LEASE_MS": "3000",
            "SHARD_RENEW_INTERVAL_S": "1",
        }
        with harness.e2e_broker(tmp_path_factory, "slack-e2e", fake_model_process, env) as broker:
            slack.client.wait_connected(timeout_s=60)
            yield World(broker=broker, slack=slack, model=fake_model_process, bot=slack.info["bot_user_id"])


async def until(probe: Any, what: str, timeout_s: float = 120) -> Any:
    return await wait_for(probe, timeout_s=timeout_s, interval_s=0.2, what=what)


async def test_mention_progress_answer_and_follow_up(world: World) -> None:
    world.model.script(
        text_reply("The flaky test is fixed.", match="fix the flaky test", chunks=4),
        text_reply("You asked me to fix the flaky test.", match="what did I ask"),
    )
    sent = world.mention("C100", "U1", "fix the flaky test")
    await until(lambda: "The flaky test is fixed." in world.thread_text("C100", sent.ts), "the answer")
    # progress: a status or eyes reaction while working, and a live view in the thread
    assert world.slack.client.statuses() or world.slack.client.reactions("C100", sent.ts)
    session = world.session("C100", sent.ts)
    thread_id = session["thread_id"]
    assert await asyncio.to_thread(Path(session["workspace"]).is_dir)

    world.slack.client.user_message("C100", "U1", "what did I ask?", thread_ts=sent.ts)
    await until(
        lambda: "You asked me to fix the flaky test." in world.thread_text("C100", sent.ts), "the follow-up"
    )
    assert world.session("C100", sent.ts)["thread_id"] == thread_id  # same Codex thread
    follow = world.model_saw("what did I ask")[-1]
    assert any("fix the flaky test" in t for t in user_texts(follow))  # the model got the earlier turn


async def test_two_threads_in_parallel_stay_isolated(world: World) -> None:
    world.model.script(
        slow_reply("answer for alpha", match="alpha task", chunks=4, delay_s=0.3),
        slow_reply("answer for beta", match="beta task", chunks=4, delay_s=0.3),
    )
    a = world.mention("C201", "U1", "alpha task")
    b = world.mention("C202", "U2", "beta task")
    await until(lambda: "answer for alpha" in world.thread_text("C201", a.ts), "alpha answer")
    await until(lambda: "answer for beta" in world.thread_text("C202", b.ts), "beta answer")
    assert "beta" not in world.thread_text("C201", a.ts) and "alpha" not in world.thread_text("C202", b.ts)
    sa, sb = world.session("C201", a.ts), world.session("C202", b.ts)
    assert sa["workspace"] != sb["workspace"] and sa["thread_id"] != sb["thread_id"]


async def test_steer_then_stop_during_a_slow_stream(world: World) -> None:
    world.model.script(
        slow_reply("working " * 80, match="slow job", chunks=80, delay_s=0.25),
        slow_reply("steered " * 80, match="steer-marker-42", chunks=80, delay_s=0.25),
    )
    sent = world.mention("C300", "U1", "slow job please")
    await until(lambda: "working" in world.thread_text("C300", sent.ts), "streaming text")
    world.slack.client.user_message("C300", "U2", "also steer-marker-42", thread_ts=sent.ts)
    await until(lambda: world.model_saw("steer-marker-42"), "the steer reaching the model")
    world.slack.client.user_message("C300", "U1", "-stop", thread_ts=sent.ts)
    await until(lambda: "Stopped." in world.thread_text("C300", sent.ts), "Stopped.")


async def test_an_answer_before_a_steer_and_the_answer_to_the_steer_both_reach_the_thread(
    world: World,
) -> None:
    """Issue 16 item 2: a slow model answers, a follow-up steers the turn, Codex answers it too;
    the thread gets both answers as messages, in order, once each."""
    world.model.script(
        held_reply("answer-one-s7 is here", hold_s=30, match="question-one"),
        text_reply("answer-two-s7 is here", match="question-two"),
    )
    sent = world.mention("C350", "U1", "question-one please")
    await until(lambda: "answer-one-s7" in world.thread_text("C350", sent.ts), "the first answer streaming")
    world.slack.client.user_message("C350", "U1", "and question-two", thread_ts=sent.ts)

    def answers() -> list[str] | None:
        streams = set(world.slack.client.streams())
        texts = [
            m.get("text", "")
            for m in world.slack.client.messages(channel="C350", thread_ts=sent.ts, from_bot=True)
            if not m.get("deleted") and m["ts"] not in streams
        ]
        return [t for t in texts if "answer-one-s7" in t or "answer-two-s7" in t]

    # in order, once each, and nowhere else once the turn is over (a live view keeps no answer)
    expected = ["answer-one-s7 is here", "answer-two-s7 is here"]
    await until(lambda: answers() == expected, f"exactly {expected} in the thread")


async def test_backfill_dm_refusal_and_retry(world: World) -> None:
    # the first mention inside an existing human thread carries the earlier messages
    root = world.slack.client.seed_message("C400", "U2", "the deploy failed at step 3")
    world.slack.client.seed_message("C400", "U3", "logs say disk full", thread_ts=root)
    world.model.script(text_reply("Backfill seen.", match="please look"))
    world.mention("C400", "U1", "please look", thread_ts=root)
    await until(lambda: "Backfill seen." in world.thread_text("C400", root), "the backfilled answer")
    request = world.model_saw("please look")[-1]
    text = "\n".join(user_texts(request))
    assert "deploy failed at step 3" in text and "disk full" in text

    # a DM is a session of its own
    world.model.script(text_reply("Hello in private.", match="private question"))
    dm = world.slack.client.user_message("D500", "U1", "private question", channel_type="im")
    await until(lambda: "Hello in private." in world.thread_text("D500", dm.ts), "the DM answer")

    # an unauthorised user gets one polite refusal and no turn
    before = len(world.model.requests)
    denied = world.mention("C600", "U9", "let me in")
    await until(lambda: "not allowed" in world.thread_text("C600", denied.ts), "the refusal")
    assert not world.model_saw("let me in") and len(world.model.requests) == before

    # a Slack retry of the same event gives one turn
    world.model.script(text_reply("Only once.", match="retry me"))
    sent = world.mention("C700", "U1", "retry me")
    for event_id in sent.event_ids:
        world.slack.client.resend(event_id)
    await until(lambda: "Only once." in world.thread_text("C700", sent.ts), "the answer")
    await asyncio.sleep(2)
    assert len(world.model_saw("retry me")) == 1
    assert world.thread_text("C700", sent.ts).count("Only once.") == 1


async def test_status_and_new(world: World) -> None:
    world.model.script(text_reply("First thread answer.", match="remember alpha"))
    sent = world.mention("C800", "U1", "remember alpha")
    await until(lambda: "First thread answer." in world.thread_text("C800", sent.ts), "first answer")
    old_thread = world.session("C800", sent.ts)["thread_id"]
    # the forms Slack delivers as text (a leading "/" is Slack's own slash command)
    world.slack.client.user_message("C800", "U1", "-status", thread_ts=sent.ts)
    await until(lambda: old_thread in world.thread_text("C800", sent.ts), "-status with the Codex thread id")
    world.slack.client.user_message("C800", "U1", "-new", thread_ts=sent.ts)
    await until(lambda: "fresh Codex thread" in world.thread_text("C800", sent.ts), "-new reply")
    world.model.script(text_reply("Second thread answer.", match="start over"))
    world.slack.client.user_message("C800", "U1", "start over", thread_ts=sent.ts)
    await until(lambda: "Second thread answer." in world.thread_text("C800", sent.ts), "answer after /new")
    assert world.session("C800", sent.ts)["thread_id"] != old_thread
    fresh = world.model_saw("start over")[-1]
    assert not any("remember alpha" in t for t in user_texts(fresh))  # a fresh Codex thread


async def test_the_codex_slash_command_is_acked_and_answered_ephemerally(world: World) -> None:
    envelope = world.slack.client.slash_command("C810", "U1", "/codex", "help")

    def answered(text: str, **where: str) -> dict | None:
        return next(
            (
                e
                for e in world.slack.client.ephemerals()
                if text in e.get("text", "") and all(e.get(k) == v for k, v in where.items())
            ),
            None,
        )

    help_answer = await until(lambda: answered("/codex status", channel="C810", user="U1"), "/codex help")
    assert "thread_ts" not in help_answer  # no thread given: the channel
    assert "`/status`" not in help_answer["text"]  # Slack never delivers that form
    [acked] = [e for e in world.slack.client.envelopes() if e["envelope_id"] == envelope]
    assert acked["acked"]

    world.model.script(text_reply("Slash thread answer.", match="slash thread"))
    sent = world.mention("C811", "U1", "slash thread")
    await until(lambda: "Slash thread answer." in world.thread_text("C811", sent.ts), "the answer")
    thread_id = world.session("C811", sent.ts)["thread_id"]
    world.slack.client.slash_command("C811", "U1", "/codex", "status", thread_ts=sent.ts)
    status = await until(lambda: answered(thread_id, channel="C811", thread_ts=sent.ts), "/codex status")
    assert status["user"] == "U1"
    assert thread_id not in world.thread_text("C811", sent.ts)  # only the asker saw it


async def test_orchestrator_sigkill_between_mention_and_answer(world: World) -> None:
    world.model.script(slow_reply("Survived the crash.", match="crash test", chunks=6, delay_s=0.5))
    sent = world.mention("C900", "U1", "crash test")
    await until(lambda: world.model_saw("crash test"), "the turn reaching the model")
    pid = world.broker.kill_service("orchestrator")
    await asyncio.to_thread(world.broker.wait_restarted, "orchestrator-1", pid)
    await until(
        lambda: "Survived the crash." in world.thread_text("C900", sent.ts), "the answer after restart"
    )
    await asyncio.sleep(3)
    assert world.thread_text("C900", sent.ts).count("Survived the crash.") == 1  # exactly once


# What Codex 0.169 creates with explicit modes (a umask cannot narrow a chmod), each inside a 0700
# directory: its analytics id (0644, not a secret) and the empty mount points its sandbox makes for
# the names it keeps read-only in every writable root (0755)
CODEX_OWN_FILES = {Path("codex-home/installation_id")}
SANDBOX_MOUNT_POINTS = {".git", ".codex", ".agents", ".aws"}


def _codex_own(relative: Path, path: Path) -> bool:
    if stat.S_IMODE(path.parent.stat().st_mode) != 0o700:
        return False
    if relative in CODEX_OWN_FILES:
        return True
    return path.name in SANDBOX_MOUNT_POINTS and path.is_dir() and not any(path.iterdir())


def _open_to_others(root: Path) -> list[str]:
    """Every file or directory below `root` (symlinks aside) with a group or other bit."""
    found = []
    for directory, names, files in os.walk(root):
        for name in [*names, *files]:
            path = Path(directory) / name
            info = path.lstat()
            relative = path.relative_to(root)
            if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077 or _codex_own(relative, path):
                continue
            found.append(f"{oct(stat.S_IMODE(info.st_mode))} {relative}")
    if stat.S_IMODE(root.stat().st_mode) & 0o077:
        found.append("DATA_ROOT itself")
    return found


async def test_data_root_stays_private_while_codex_writes_and_commits(world: World) -> None:
    """Every process runs with umask 077 (libs.runtime.private_data_root): logs, sessions,
    downloads, CODEX_HOME state, uploads' outbox and what Codex and git create in the workspace are
    closed to group and others, and Codex can still write, run and commit in its workspace."""
    commit = (
        "git init -q repo && cd repo && printf 'echo ran' > tool.sh && chmod +x tool.sh && ./tool.sh"
        " && git add tool.sh && git -c user.name=T -c user.email=t@example.com commit -q -m first"
        " && git log --format=%s"
    )
    world.model.script(
        tool_call_reply(commit, match="private commit"), text_reply("Committed.", match="private commit")
    )
    shared = world.slack.client.add_file("notes.txt", b"a shared file", "text/plain")
    sent = world.slack.client.user_message("C900", "U1", f"<@{world.bot}> private commit", files=[shared])
    await until(lambda: "Committed." in world.thread_text("C900", sent.ts), "the answer")
    outputs = [o for r in world.model_saw("private commit") for o in tool_outputs(r)]
    assert any("ran" in o and "first" in o for o in outputs), outputs
    workspace = Path(world.session("C900", sent.ts)["workspace"])
    assert await asyncio.to_thread((workspace / "repo" / ".git").is_dir)
    downloaded = await asyncio.to_thread(lambda: list((workspace / ".attachments").rglob("*notes.txt")))
    assert downloaded, "the attachment was downloaded"

    offenders = await asyncio.to_thread(_open_to_others, world.broker.data_root)
    assert offenders == [], "\n".join(offenders)

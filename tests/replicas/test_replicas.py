"""Replicas as processes: `codex-broker up --replicas orchestrator=2,codex-runner=3,ingress-slack=2,
http-api=2`, the fake Slack spreading events over both Socket Mode connections, the real Codex
on the fake model. One broker serves the module; each test uses its own channels.

`up` restarts a killed child only after UP_RESTART_BACKOFF_INITIAL_S (20 s here), so a test
that kills a replica sees the survivors take over instead of the same replica coming back.
Delays (takeover, "runner stopped" notice) are printed, never asserted beyond a bounded wait.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from codex_broker.libs.keys import shard_of
from tests.conftest import REDIS_URL
from tests.e2e.harness import fake_model_process
from tests.fakes.fake_model import FakeModelClient, slow_reply, text_reply, user_texts
from tests.replicas.support import (
    FULL_REPLICAS,
    RUNNER_GONE_TEXT,
    SlackWorld,
    is_final_answer,
    slack_world,
    tokens_in,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

RESTART_BACKOFF_S = "20"


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelClient]:
    with fake_model_process() as client:
        yield client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model: FakeModelClient) -> Iterator[SlackWorld]:
    env = {
        "UP_RESTART_BACKOFF_INITIAL_S": RESTART_BACKOFF_S,
        "UP_RESTART_BACKOFF_MAX_S": RESTART_BACKOFF_S,
        "MESSAGE_DURING_RUN": "queue",
    }
    with slack_world(
        tmp_path_factory.mktemp("replicas"), model, redis_url=REDIS_URL, replicas=FULL_REPLICAS, env=env
    ) as w:
        yield w


async def until(probe: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
    return await asyncio.to_thread(wait_until, probe, timeout_s, what, 0.1)


def finals(world: SlackWorld, channel: str, root: str) -> list[str]:
    return [m["text"] for m in world.bot_messages(channel, root) if is_final_answer(m)]


def answered(world: SlackWorld, channel: str, root: str, phrase: str) -> bool:
    return any(phrase in t for t in finals(world, channel, root))


async def test_two_orchestrators_split_shards_and_take_over_a_killed_one(world: SlackWorld) -> None:
    half = world.broker.keys.shard_count // 2

    def split() -> dict[int, str | None] | None:
        holders = world.shard_holders()
        counts = [list(holders.values()).count(f"orchestrator-{n}") for n in (1, 2)]
        return holders if counts == [half, half] else None

    holders = await until(split, "the shards split evenly between the two orchestrators")
    print(f"\nshard leases: {holders}")
    # a thread whose shard belongs to orchestrator-1, busy with a slow turn when it dies
    channel, root = "C100", ""
    for _ in range(50):
        ts = world.slack.client.seed_message(channel, "U2", "a thread about the build")
        if (
            holders[shard_of(world.session_key(channel, ts), world.broker.keys.shard_count)]
            == "orchestrator-1"
        ):
            root = ts
            break
    assert root, "no thread root landed on orchestrator-1's shards"
    world.mention(channel, "U1", "tok-A-1 first", thread_ts=root)
    await until(lambda: answered(world, channel, root, "tok-A-1"), "the first answer")
    world.model.script(slow_reply("echo: tok-A-2 slow", match="tok-A-2", chunks=8, delay_s=0.4))
    world.slack.client.user_message(channel, "U1", "tok-A-2 slow one", thread_ts=root)
    await until(lambda: world.model_saw("tok-A-2"), "the slow turn reaching the model")
    # more messages of the thread while its orchestrator is dead: they must come out in order
    pid = world.broker.kill_service("orchestrator-1")
    killed_at = time.monotonic()
    for seq in (3, 4, 5):
        world.slack.client.user_message(channel, "U1", f"tok-A-{seq} follow-up", thread_ts=root)
        await asyncio.sleep(0.4)
    taken = await until(
        lambda: set(world.shard_holders().values()) == {"orchestrator-2"},
        "orchestrator-2 holding every shard",
        30,
    )
    print(f"takeover of every shard by orchestrator-2: {time.monotonic() - killed_at:.1f}s after SIGKILL")
    assert taken
    await until(lambda: answered(world, channel, root, "tok-A-5"), "the answer to the last follow-up")
    await asyncio.sleep(2)
    seen = [t for text in finals(world, channel, root) for t in tokens_in(text)]
    assert seen == [f"tok-A-{i}" for i in range(1, 6)], seen  # each once, in order
    await asyncio.to_thread(world.broker.wait_restarted, "orchestrator-1", pid)


def runner_of_active_run(world: SlackWorld, channel: str, root: str) -> str | None:
    run_id = world.state(channel, root).get("active_run_id")
    return world.run(run_id).get("runner_id") if run_id else None


async def test_runner_killed_mid_turn_is_reported_and_the_thread_continues_elsewhere(
    world: SlackWorld,
) -> None:
    channel = "C200"
    world.model.script(text_reply("echo: tok-B-1 done", match="tok-B-1"))
    sent = world.mention(channel, "U1", "tok-B-1 remember the word pelican")
    root = sent.ts
    await until(lambda: answered(world, channel, root, "tok-B-1"), "the first answer")
    thread_id = world.session(channel, root)["thread_id"]
    world.model.script(slow_reply("echo: tok-B-2 " + "slow " * 60, match="tok-B-2", chunks=60, delay_s=0.5))
    world.slack.client.user_message(channel, "U1", "tok-B-2 a long one", thread_ts=root)
    await until(lambda: world.model_saw("tok-B-2"), "the slow turn reaching the model")
    runner = await until(lambda: runner_of_active_run(world, channel, root), "the runner of the slow turn")
    pid = world.broker.kill_service(str(runner))
    killed_at = time.monotonic()
    await until(lambda: RUNNER_GONE_TEXT in world.thread_text(channel, root), "the user being told", 30)
    print(f"\n{runner} SIGKILLed mid-turn; the thread was told after {time.monotonic() - killed_at:.1f}s")

    # Runners take a heartbeat older than two intervals (+2 s) for a dead runner; until then a
    # follow-up would wait for the killed runner to come back (it holds the Codex thread).
    await asyncio.sleep(max(0.0, killed_at + 13 - time.monotonic()))
    world.model.script(text_reply("echo: tok-B-3 continued", match="tok-B-3"))
    world.slack.client.user_message(channel, "U1", "tok-B-3 which bird?", thread_ts=root)
    await until(lambda: answered(world, channel, root, "tok-B-3"), "the answer after the runner died")
    next_runner = world.run(world.session(channel, root)["last_run_id"])["runner_id"]
    print(f"next turn ran on {next_runner} (the killed one was {runner})")
    assert next_runner != runner  # the killed runner is still down (restart backoff)
    assert world.session(channel, root)["thread_id"] == thread_id  # the same Codex thread
    request = world.model_saw("tok-B-3")[-1]
    assert any("pelican" in t for t in user_texts(request))  # resumed with the earlier turns
    await asyncio.to_thread(world.broker.wait_restarted, str(runner), pid)


async def test_follow_ups_from_any_runner_reach_the_thread_on_one_runner(world: SlackWorld) -> None:
    """Every turn is claimed by whichever runner reads first; the run goes to the runner whose
    Codex app-server holds the thread (Codex allows one writer per thread)."""
    channel = "C300"
    sent = world.mention(channel, "U1", "tok-C-1 start")
    root = sent.ts
    await until(lambda: answered(world, channel, root, "tok-C-1"), "the first answer")
    for seq in range(2, 7):
        world.slack.client.user_message(channel, "U1", f"tok-C-{seq} next", thread_ts=root)
        await until(partial(answered, world, channel, root, f"tok-C-{seq}"), f"answer {seq}")
    seen = [t for text in finals(world, channel, root) for t in tokens_in(text)]
    assert seen == [f"tok-C-{i}" for i in range(1, 7)]
    assert not any(RUNNER_GONE_TEXT in m.get("text", "") for m in world.bot_messages(channel, root))
    assert "Codex refused" not in world.thread_text(channel, root)
    request = world.model_saw("tok-C-6")[-1]
    assert any("tok-C-1" in t for t in user_texts(request))  # one Codex thread throughout


async def test_two_ingress_connections_share_events_and_a_retry_on_the_other_gives_one_turn(
    world: SlackWorld,
) -> None:
    client = world.slack.client
    assert len(client.connection_ids()) == 2
    sent = [world.mention(f"C4{n:02d}", "U2", f"tok-D-{n} spread") for n in range(4)]
    for n, message in enumerate(sent):
        channel, root, token = f"C4{n:02d}", message.ts, f"tok-D-{n}"
        await until(partial(answered, world, channel, root, token), f"answer {n}")
    used = {e["connection"] for m in sent for event_id in m.event_ids for e in client.envelopes(event_id)}
    print(f"\nenvelopes went over connections {sorted(used)}")
    assert len(used) == 2  # both ingress replicas received events

    world.model.script(text_reply("echo: tok-E-1 only once", match="tok-E-1"))
    retried = world.mention("C450", "U2", "tok-E-1 retry me")
    mention_id = retried.event_ids[-1]
    await until(lambda: client.acked(mention_id), "the first delivery acked")
    first = client.envelopes(mention_id)[0]["connection"]
    other = next(c for c in client.connection_ids() if c != first)
    client.resend(mention_id, connection=other)
    await until(lambda: answered(world, "C450", retried.ts, "tok-E-1"), "the answer")
    await until(lambda: [e["acked"] for e in client.envelopes(mention_id)] == [True, True], "both acked")
    assert client.envelopes(mention_id)[1]["connection"] == other
    await asyncio.sleep(2)
    assert len(world.model_saw("tok-E-1")) == 1  # one turn
    assert len(finals(world, "C450", retried.ts)) == 1


def read_token(path: Path) -> str:
    return path.read_text().strip()


async def test_both_http_api_replicas_serve_the_session_api(world: SlackWorld) -> None:
    sent = world.mention("C500", "U1", "tok-F-1 hello api")
    await until(lambda: answered(world, "C500", sent.ts, "tok-F-1"), "the answer")
    instructions = world.model_saw("tok-F-1")[-1].get("instructions", "") + json.dumps(
        world.model_saw("tok-F-1")[-1].get("input")
    )
    token_file = re.search(r"BROKER_SESSION_TOKEN_FILE=(/[^\s\\\"`]+)", instructions)
    assert token_file, "no session token file in what Codex received"
    token = read_token(Path(token_file.group(1)))  # the runner wrote it there
    base = world.broker.http_api_port
    coords = {"platform": "slack", "conversation_id": "C500", "root_message_id": sent.ts}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for n, port in enumerate((base, base + 1)):
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 200, ready.text
            posted = await http.post(
                f"http://127.0.0.1:{port}/chat/post-message",
                headers={"Authorization": f"Bearer {token}"},
                json={**coords, "text": f"note from replica {n + 1}", "kind": "progress"},
            )
            assert posted.status_code == 200, posted.text
    await until(
        lambda: all(f"note from replica {n}" in world.thread_text("C500", sent.ts) for n in (1, 2)),
        "the posts through both replicas",
    )

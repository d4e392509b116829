"""Discord with replicas: `codex-broker up --replicas ingress-discord=2,orchestrator=2`, the fake
Discord sending every gateway event to both bot sessions (as Discord does), the real Codex on the
fake model. Both replicas store each event once (the event id dedupes); a replica SIGKILLed in the
middle of a turn loses nothing and posts nothing twice (the survivor takes over its outbound
entries when they have been idle CLAIM_IDLE_MS) — in workspace mode too: a delegation made in the
home channel opens one task thread and wakes the operator once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.e2e import harness
from tests.e2e.harness import WORKSPACE_TASK, fake_model_process
from tests.fakes.fake_model import FakeModelClient, function_call_reply, slow_reply, text_reply
from tests.replicas.support import DiscordWorld, discord_world, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.codex]


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelClient]:
    with fake_model_process() as client:
        yield client


@pytest.fixture(scope="module")
def workspace_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return harness.workspace_root(tmp_path_factory)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, model: FakeModelClient, workspace_root: Path
) -> Iterator[DiscordWorld]:
    env = {
        "CLAIM_IDLE_MS": "3000",
        "SHARD_LEASE_MS": "3000",
        "SHARD_RENEW_INTERVAL_S": "1",
        # the killed replica stays down long enough for the survivor to be the one that delivers
        "UP_RESTART_BACKOFF_INITIAL_S": "20",
        "UP_RESTART_BACKOFF_MAX_S": "20",
    }
    replicas = {"ingress-discord": 2, "orchestrator": 2}
    root = tmp_path_factory.mktemp("discord-replicas")
    with discord_world(
        root, model, redis_url=REDIS_URL, replicas=replicas, env=env, workspace_root=workspace_root
    ) as w:
        yield w


async def until(probe: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    return await asyncio.to_thread(wait_until, probe, timeout_s, what, 0.1)


async def test_both_gateway_sessions_get_each_mention_and_it_is_one_turn(world: DiscordWorld) -> None:
    await until(lambda: world.discord.connections() == 2, "both gateway sessions", timeout_s=90)
    world.model.script(text_reply("echo: tok-R-1 once", match="tok-R-1"))
    sent = world.mention("tok-R-1 hello")
    await until(lambda: world.finals(sent["id"]), "the answer")
    await until(lambda: world.discord.count("POST", f"/messages/{sent['id']}/threads") >= 1, "the thread")
    await asyncio.sleep(2)
    assert world.finals(sent["id"]) == ["echo: tok-R-1 once"]
    assert len(world.model_saw("tok-R-1")) == 1  # both replicas received it, one turn ran
    created = world.discord.count("POST", f"/messages/{sent['id']}/threads", status=201)
    assert created == 1  # a second try by the other replica is Discord's "already created"


async def test_an_ingress_replica_killed_mid_turn_delivers_the_answer_once(world: DiscordWorld) -> None:
    world.model.script(slow_reply("echo: tok-K-1 survived", match="tok-K-1", chunks=16, delay_s=0.4))
    sent = world.mention("tok-K-1 long turn")
    await until(lambda: world.model_saw("tok-K-1"), "the turn reaching the model")
    await until(lambda: world.discord.bot_messages(sent["id"]), "the live message")
    pid = world.broker.kill_service("ingress-discord-1")  # SIGKILL, mid-stream
    print(f"\nkilled ingress-discord-1 (pid {pid}) mid-turn")
    await until(lambda: world.finals(sent["id"]), "the answer from the surviving replica", timeout_s=180)
    await asyncio.sleep(3)
    assert world.finals(sent["id"]) == ["echo: tok-K-1 survived"]
    views = [m for m in world.discord.bot_messages(sent["id"]) if m["content"].startswith("**")]
    assert len(views) == 1  # one live message, finished once
    assert not any(row for m in views for row in m["components"])  # its Stop button removed


async def test_a_delegation_with_an_ingress_replica_killed_mid_task_opens_one_thread_and_wakes_once(
    world: DiscordWorld,
) -> None:
    """Both gateway sessions get the home channel's message; the operator delegates, and while
    the task answers in its Discord thread one ingress replica is SIGKILLed: the delegation has
    one thread, the task's answer lands there once and the operator's woken answer once."""
    # the test before this one killed ingress-discord-1: both sessions are back first
    await until(lambda: world.discord.connections() == 2, "both gateway sessions", timeout_s=90)
    world.model.script(
        function_call_reply(
            "start_delegation",
            {"cwd": "proj", "prompt": f"{WORKSPACE_TASK}: tok-W-1 the report", "title": "tok-W-1"},
            match="tok-W-1 please delegate",
        ),
        text_reply("echo: tok-W-1 delegated", match="tok-W-1 please delegate"),
        slow_reply("echo: tok-W-1 task done", match=WORKSPACE_TASK, chunks=16, delay_s=0.4),
        text_reply("echo: tok-W-1 operator woken", match="<delegation_results>"),
    )
    world.discord.user_message(world.home, "alice", "tok-W-1 please delegate the report")  # no mention
    await until(lambda: world.model_saw(f"{WORKSPACE_TASK}: tok-W-1"), "the task reaching the model")
    pid = world.broker.kill_service("ingress-discord-2")  # SIGKILL while the task streams
    print(f"\nkilled ingress-discord-2 (pid {pid}) mid-task")
    await until(lambda: world.finals(world.home).count("echo: tok-W-1 operator woken"), "the wake", 180)
    await asyncio.sleep(3)
    tasks = [
        m
        for m in world.discord.bot_messages(world.home)
        if "tok-W-1" in m["content"] and world.discord.thread(m["id"]) is not None
    ]
    assert len(tasks) == 1  # one task thread, though both replicas saw the message
    assert world.finals(tasks[0]["id"]) == ["echo: tok-W-1 task done"]
    home_answers = world.finals(world.home)
    assert home_answers.count("echo: tok-W-1 delegated") == 1
    assert home_answers.count("echo: tok-W-1 operator woken") == 1

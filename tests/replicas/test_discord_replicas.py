"""Discord with replicas: `codex-broker up --replicas ingress-discord=2,orchestrator=2`, the fake
Discord sending every gateway event to both bot sessions (as Discord does), the real Codex on the
fake model. Both replicas store each event once (the event id dedupes); a replica SIGKILLed in the
middle of a turn loses nothing and posts nothing twice (the survivor takes over its outbound
entries when they have been idle CLAIM_IDLE_MS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.harness import fake_model_process
from tests.fakes.fake_model import FakeModelClient, slow_reply, text_reply
from tests.replicas.support import DiscordWorld, discord_world, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.codex]


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelClient]:
    with fake_model_process() as client:
        yield client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model: FakeModelClient) -> Iterator[DiscordWorld]:
    env = {
        "CLAIM_IDLE_MS": "3000",
        "SHARD_LEASE_MS": "3000",
        "SHARD_RENEW_INTERVAL_S": "1",
        # the killed replica stays down long enough for the survivor to be the one that delivers
        "UP_RESTART_BACKOFF_INITIAL_S": "20",
        "UP_RESTART_BACKOFF_MAX_S": "20",
    }
    replicas = {"ingress-discord": 2, "orchestrator": 2}
    with discord_world(
        tmp_path_factory.mktemp("discord-replicas"), model, redis_url=REDIS_URL, replicas=replicas, env=env
    ) as w:
        yield w


async def until(probe: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    return await asyncio.to_thread(wait_until, probe, timeout_s, what, 0.1)


async def test_both_gateway_sessions_get_each_mention_and_it_is_one_turn(world: DiscordWorld) -> None:
    assert world.discord.connections() == 2
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

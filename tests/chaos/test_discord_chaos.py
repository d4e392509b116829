"""Chaos on the Discord path: task threads taking turns through the fake Discord while a seeded
random ingress-discord or orchestrator replica is SIGKILLed every few seconds (`codex-broker up`
restarts it), the real Codex on the fake model (its echo carries each message's token). At most
one ingress replica is down at a time: Discord does not re-send a gateway event, so a channel
mention that reaches no live session is lost by design (docs/services/ingress-discord.md); thread
messages missed by a restarting replica come back through its backfill, and are stored once.

Verdict: every message's token is in exactly one of the bot's answers, in the order sent."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.harness import fake_model_process
from tests.fakes.fake_model import FakeModelClient, slow_reply
from tests.replicas.support import (
    DiscordWorld,
    discord_world,
    tokens_in,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

THREADS = 4
MESSAGES_PER_THREAD = 4
KILL_EVERY_S = 3.0
KILLABLE = ("ingress-discord-1", "ingress-discord-2", "orchestrator-1", "orchestrator-2")
ENV = {
    "CLAIM_IDLE_MS": "3000",
    "SHARD_LEASE_MS": "4000",
    "SHARD_RENEW_INTERVAL_S": "1",
    "RECONCILE_INTERVAL_S": "1",
    "UP_RESTART_BACKOFF_INITIAL_S": "0.5",
    "UP_RESTART_BACKOFF_MAX_S": "2",
}


@pytest.fixture
def model() -> Iterator[FakeModelClient]:
    with fake_model_process() as client:
        yield client


async def until(probe: Callable[[], Any], what: str, timeout_s: float = 240) -> Any:
    return await asyncio.to_thread(wait_until, probe, timeout_s, what, 0.2)


def answers(world: DiscordWorld, thread: str) -> list[str]:
    return [t for text in world.finals(thread) for t in tokens_in(text)]


class Killer(threading.Thread):
    """SIGKILLs a seeded random replica every KILL_EVERY_S; an ingress only while both are up."""

    def __init__(self, world: DiscordWorld, seed: int) -> None:
        super().__init__(daemon=True)
        self.world = world
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.kills: list[str] = []

    def run(self) -> None:
        while not self.stopped.wait(KILL_EVERY_S):
            victim = self.rng.choice(KILLABLE)
            if victim.startswith("ingress") and self.world.discord.connections() < 2:
                continue  # the other one is still reconnecting
            try:
                self.world.broker.kill_service(victim)
            except AssertionError:
                continue  # restarting right now: no heartbeat to find it by
            self.kills.append(victim)


async def test_every_thread_message_answered_once_in_order_under_kills(
    tmp_path: Path, model: FakeModelClient
) -> None:
    replicas = {"ingress-discord": 2, "orchestrator": 2}
    with discord_world(tmp_path, model, redis_url=REDIS_URL, replicas=replicas, env=ENV) as world:
        killer = Killer(world, seed=1234)
        started = time.monotonic()

        async def converse(n: int) -> list[str]:
            tokens = [f"tok-T{n}-{i}" for i in range(1, MESSAGES_PER_THREAD + 1)]
            # turns of a few seconds each, so the kills land in the middle of them
            world.model.script(*(slow_reply(f"echo: {t}", match=t, chunks=8, delay_s=0.4) for t in tokens))
            sent = world.mention(f"{tokens[0]} start")
            thread = sent["id"]
            for index, token in enumerate(tokens):
                if index:
                    world.discord.user_message(thread, "alice", f"{token} next")
                await until(lambda t=token: t in answers(world, thread), f"{token} answered")
            return [thread]

        killer.start()
        try:
            threads = [
                t for found in await asyncio.gather(*(converse(n) for n in range(THREADS))) for t in found
            ]
        finally:
            killer.stopped.set()
            killer.join(10)
        await asyncio.sleep(4)  # anything late would show now
        print(f"\n{len(killer.kills)} kills in {time.monotonic() - started:.0f}s: {killer.kills}")
        assert len(killer.kills) >= 3
        for n, thread in enumerate(threads):
            expected = [f"tok-T{n}-{i}" for i in range(1, MESSAGES_PER_THREAD + 1)]
            assert answers(world, thread) == expected, world.finals(thread)

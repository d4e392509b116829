"""Rollouts keep turns: a codex-runner process on SIGTERM (or `codex-broker drain`) stops
claiming, keeps its heartbeat while its turns finish within RUNNER_DRAIN_GRACE_S, and hands the
rest over with the restart notice in their thread — never silently. Through the real orchestrator
(in process), the real runner process, the real Codex binary and the fake model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.cli.drain import DrainError, drain
from codex_broker.libs.contracts import OutboundAction, ProgressPayload
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator import render
from tests.codex_runner.harness import DEAD_PROXY
from tests.fakes.codex_home import FAKE_API_KEY
from tests.fakes.fake_model import FakeModel, gated_reply, user_texts
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, make_settings, message

pytestmark = pytest.mark.codex

RUNNER_ID = "drain-runner"
DEAD_AFTER_S = 2.0  # the orchestrator's RUNNER_DEAD_AFTER_S here: far below the drain


@contextlib.contextmanager
def runner_process(
    tmp_path: Path, data_root: Path, key_prefix: str, redis_url: str, grace_s: float
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "REDIS_URL": redis_url,
        "KEY_PREFIX": key_prefix,
        "SHARD_COUNT": "4",
        "DATA_ROOT": str(data_root),
        "INSTANCE_ID": RUNNER_ID,
        "METRICS_PORT": "0",
        "OPENAI_API_KEY": FAKE_API_KEY,
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "RUNNER_DRAIN_GRACE_S": str(grace_s),
        "HEARTBEAT_INTERVAL_S": "0.3",
        "BROKER_API_BASE": "http://127.0.0.1:3999",
    }
    log = open(tmp_path / "runner.log", "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "codex_broker.codex_runner"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


async def _heartbeat(redis: Redis, keys: Keys) -> dict | None:
    raw = await redis.get(keys.heartbeat("codex-runner", RUNNER_ID))
    return json.loads(raw) if raw else None


def _final_of(session_key: str) -> object:
    def match(action: OutboundAction) -> bool:
        return action.action_id.startswith("final:") and action.session_key == session_key

    return match


async def test_sigterm_lets_a_slow_turn_finish_and_hands_a_longer_one_over(
    driver: Driver,
    fake_model: FakeModel,
    codex_data_root: Path,
    key_prefix: str,
    redis_url: str,
    redis: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    fake_model.script(
        gated_reply("The short job is done.", gate="short", match="short job"),
        gated_reply("Still on the long job", gate="long", match="long job"),
    )
    await driver.start(
        make_settings(key_prefix, redis_url, codex_data_root, runner_dead_after_s=DEAD_AFTER_S)
    )
    with runner_process(tmp_path, codex_data_root, key_prefix, redis_url, grace_s=25) as runner:
        await wait_for(lambda: _heartbeat(redis, keys), timeout_s=60, what="runner heartbeat")
        short, long = message("the short job", conversation="C1"), message("the long job", conversation="C2")
        await driver.inbound(short)
        await driver.inbound(long)

        def both_asked() -> bool:
            asked = [t for body in fake_model.requests for t in user_texts(body)]
            return any("short job" in t for t in asked) and any("long job" in t for t in asked)

        await wait_for(both_asked, timeout_s=90, what="the model is asked both turns")
        runner.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            beat = await _heartbeat(redis, keys)
            return bool(beat and beat.get("draining") and beat.get("capacity") == 0)

        await wait_for(draining, timeout_s=20, what="the draining runner's heartbeat")
        # longer than the orchestrator waits for a silent runner: the drain keeps the runner alive
        await asyncio.sleep(3 * DEAD_AFTER_S)
        assert await _heartbeat(redis, keys) is not None
        fake_model.release("short")
        done = await driver.wait_outbound(_final_of(short.session_key), timeout_s=60, what="short final")
        handed = await driver.wait_outbound(_final_of(long.session_key), timeout_s=90, what="long final")
        assert await asyncio.to_thread(runner.wait, 60) == 0
    assert isinstance(done.payload, ProgressPayload) and isinstance(handed.payload, ProgressPayload)
    assert done.payload.outcome == "completed", done.payload
    assert done.payload.final_text == "The short job is done."
    assert handed.payload.outcome == "interrupted", handed.payload
    assert handed.payload.final_text == render.RESTART_NOTICE
    assert "send again to continue" in handed.payload.final_text
    assert await _heartbeat(redis, keys) is None  # cleared once the runner is gone
    # one run each: neither turn was reported lost and re-run meanwhile
    assert len(await driver.run_requests()) == 2


async def test_the_drain_command_empties_one_runner(
    fake_model: FakeModel,
    codex_data_root: Path,
    key_prefix: str,
    redis_url: str,
    redis: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    with pytest.raises(DrainError):
        await drain(redis, keys, RUNNER_ID)  # nobody by that name yet
    with runner_process(tmp_path, codex_data_root, key_prefix, redis_url, grace_s=25) as runner:
        await wait_for(lambda: _heartbeat(redis, keys), timeout_s=60, what="runner heartbeat")
        sent = await drain(redis, keys, RUNNER_ID)
        assert sent["instance"] == RUNNER_ID and sent["active"] == 0
        assert await asyncio.to_thread(runner.wait, 60) == 0  # idle: it exits at once
    assert await _heartbeat(redis, keys) is None

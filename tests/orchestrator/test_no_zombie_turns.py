"""Issue 16 item 5: a run the orchestrator reported unclaimed never starts afterwards.

Orchestrator + the real codex-runner + the real Codex binary + the fake model over real Redis:
the run waits past RUN_CLAIM_TIMEOUT_S with no runner, its thread is told, and a runner started
afterwards reads the run's stream entry and refuses it (libs/run_fence.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import run_fence
from codex_broker.libs.contracts import ProgressPayload
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import GROUP_RUNNERS, Keys
from codex_broker.libs.runtime import heartbeat_loop
from tests.codex_runner.harness import events_of, runner_settings, running_runner
from tests.fakes.fake_model import FakeModel, user_texts
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, make_settings, message

pytestmark = pytest.mark.codex


async def _entry_done(redis: Redis, keys: Keys) -> bool:
    """The runners' group read every entry of the runs stream and holds none pending."""
    groups = await redis.xinfo_groups(keys.runs_stream)
    group = next((g for g in groups if g["name"] == GROUP_RUNNERS.encode()), None)
    return group is not None and group["pending"] == 0 and group["lag"] == 0


async def test_an_unclaimed_run_is_never_executed_afterwards(
    driver: Driver,
    fake_model: FakeModel,
    codex_data_root: Path,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
) -> None:
    await driver.start(
        make_settings(
            key_prefix, redis_url, codex_data_root, run_claim_timeout_s=0.5, reconcile_interval_s=0.2
        )
    )
    await driver.inbound(message("zombie-marker-5 please answer"))
    (request,) = await driver.wait_runs(1)
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", timeout_s=30)
    assert isinstance(final.payload, ProgressPayload) and final.payload.outcome == "failed"
    assert await redis.hget(keys.run(request.run_id), run_fence.FENCED_FIELD) == b"unclaimed"

    settings = runner_settings(codex_data_root, key_prefix, redis_url)
    beat = Heartbeat(
        redis, settings.keys, "codex-runner", settings.instance_id, ttl_s=20, started_at=time.time()
    )
    stop = asyncio.Event()
    beats = asyncio.create_task(heartbeat_loop(beat, 1.0, stop))
    try:
        async with running_runner(settings) as runner:
            await wait_for(
                lambda: _entry_done(redis, keys), timeout_s=60, what="the run's entry read and acked"
            )
            await wait_for(lambda: not runner.runs, timeout_s=60, what="the refused run gone from the runner")
            assert [e.kind for e in await events_of(redis, keys, request)] == []
            assert not any("zombie-marker-5" in t for body in fake_model.requests for t in user_texts(body))
            assert await redis.hget(keys.run(request.run_id), "runner_id") is None
    finally:
        stop.set()
        await beats

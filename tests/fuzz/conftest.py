"""Fixtures of the fuzz tests: the orchestrator and a Codex-less codex-runner in this process."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.codex_runner.runner import Runner
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings as OrchestratorSettings
from codex_broker.orchestrator.service import Orchestrator
from tests.codex_runner.harness import runner_settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, make_settings


@pytest_asyncio.fixture
async def orchestrator(
    redis: Redis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Orchestrator]:
    driver = Driver(redis, keys)
    settings: OrchestratorSettings = make_settings(
        # no runner finishes the runs here: no cap on runs in flight
        key_prefix,
        redis_url,
        tmp_path / "data",
        claim_idle_ms=1000,
        max_active_runs=0,
    )
    orch = await driver.start(settings)
    await wait_for(lambda: len(orch.leases.held) == keys.shard_count, timeout_s=15, what="all shards held")
    try:
        yield orch
    finally:
        await driver.close()


@pytest_asyncio.fixture
async def runner(redis: Redis, redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Runner]:
    # depends on `redis` so that it stops before that fixture deletes the test's keys
    settings = runner_settings(
        tmp_path / "data",
        key_prefix,
        redis_url,
        max_concurrent_turns=8,
        request_timeout_s=0.5,
        drain_grace_s=1.0,
        restart_backoff_max_s=1.0,
    )
    client = Redis.from_url(redis_url)
    runner = Runner(settings, client, codex_bin=f"/nonexistent/codex-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=30)
        await client.aclose()
    assert not task.cancelled()
    exc = task.exception()
    assert exc is None, "runner loop died: " + "".join(traceback.format_exception(exc))

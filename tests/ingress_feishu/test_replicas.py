"""Two ingress-feishu processes: one holds the app's connection, the other waits and takes over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from codex_broker.libs.contracts import InboundEvent, decode
from codex_broker.libs.keys import Keys
from tests.fakes.fake_feishu import FakeFeishu
from tests.helpers import wait_for


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def spawn(
    fake: FakeFeishu, redis_url: str, key_prefix: str, data_root: Path, instance: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        REDIS_URL=redis_url,
        KEY_PREFIX=key_prefix,
        SHARD_COUNT="4",
        DATA_ROOT=str(data_root),
        METRICS_PORT="0",
        INSTANCE_ID=instance,
        HEARTBEAT_INTERVAL_S="0.5",
        FEISHU_APP_ID=fake.app_id,
        FEISHU_APP_SECRET=fake.app_secret,
        FEISHU_DOMAIN=fake.url,
        FEISHU_WS_LEASE_MS="2000",
        NO_PROXY="127.0.0.1,localhost",
    )
    log = open(data_root / f"{instance}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "codex_broker.ingress_feishu"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def heartbeat(redis: Redis, keys: Keys, instance: str) -> dict[str, Any]:
    raw = await redis.get(keys.heartbeat("ingress-feishu", instance))
    return json.loads(raw) if raw else {}


async def test_standby_replica_takes_over_when_the_holder_dies(
    processes: list[subprocess.Popen[bytes]],
    redis: Redis,
    redis_url: str,
    key_prefix: str,
    keys: Keys,
    tmp_path: Path,
) -> None:
    fake = FakeFeishu().start()
    try:
        first = spawn(fake, redis_url, key_prefix, tmp_path, "replica-a")
        processes.append(first)
        await wait_for(lambda: fake.connected() == 1, timeout_s=30, what="replica-a connected")
        second = spawn(fake, redis_url, key_prefix, tmp_path, "replica-b")
        processes.append(second)

        async def standby() -> bool:
            return (await heartbeat(redis, keys, "replica-b")).get("feishu_ws") == "standby"

        await wait_for(standby, timeout_s=30, what="replica-b on standby")
        assert fake.connected() == 1  # one connection per app
        assert (await heartbeat(redis, keys, "replica-a"))["feishu_ws"] == "connected"

        first.send_signal(signal.SIGKILL)  # no release: the lease has to lapse
        first.wait(timeout=10)

        async def taken_over() -> bool:
            return (await heartbeat(redis, keys, "replica-b")).get("feishu_ws") == "connected"

        await wait_for(taken_over, timeout_s=30, what="replica-b taking over")
        await wait_for(lambda: fake.connected() == 1, timeout_s=10, what="one connection again")
        sent = fake.push_message(chat_id="oc_g", text="still here?", mention_bot=True)

        async def persisted() -> list[InboundEvent] | None:
            found = []
            for shard in range(keys.shard_count):
                for _, fields in await redis.xrange(keys.inbound_stream(shard)):
                    found.append(decode(InboundEvent, fields[b"data"]))
            return found or None

        [event] = await wait_for(persisted, timeout_s=15, what="the event via replica-b")
        assert event.message_id == sent["message_id"]

        second.send_signal(signal.SIGTERM)  # graceful: releases the lease
        assert await asyncio.to_thread(second.wait, 30) == 0
        assert await redis.get(keys.lease(f"feishu-ws:{fake.app_id}")) is None
    finally:
        fake.stop()

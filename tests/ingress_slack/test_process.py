"""ingress-slack and the fake Slack as processes, the way the end-to-end suite runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.fakes.fake_slack_client import REPO_ROOT, start_fake_slack_process
from tests.helpers import free_port, wait_for
from tests.ingress_slack.support import inbound_events

pytestmark = pytest.mark.e2e


async def test_ingress_process_stores_a_mention_from_the_fake_slack_process(
    redis: Redis, keys: Keys, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    with start_fake_slack_process("--ack-timeout-s", "2") as slack:
        metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            slack.env,
            REDIS_URL=redis_url,
            KEY_PREFIX=key_prefix,
            SHARD_COUNT=str(keys.shard_count),
            METRICS_PORT=str(metrics_port),
            DATA_ROOT=str(tmp_path),
            LOG_LEVEL="WARNING",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "codex_broker.ingress_slack",
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            await wait_for(lambda: slack.client.connections() >= 1, timeout_s=30, what="ingress connected")
            client = slack.client
            client.add_user("U1", "alice", display_name="Alice")
            sent = client.user_message("C1", "U1", f"<@{slack.info['bot_user_id']}> hello")
            await wait_for(lambda: all(client.acked(e) for e in sent.event_ids), timeout_s=20, what="acks")
            events = await inbound_events(redis, keys)
            assert [(e.text, e.actor.display_name) for e in events] == [("hello", "Alice")]

            async with httpx.AsyncClient(trust_env=False) as http:
                ready = await http.get(f"http://127.0.0.1:{metrics_port}/readyz")
                metrics = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert ready.status_code == 200 and ready.json()["checks"]["slack"] == "ok"
            assert 'cb_slack_inbound_total{kind="message",result="persisted"}' in metrics.text or (
                'cb_slack_inbound_total{kind="app_mention",result="persisted"}' in metrics.text
            )
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.wait_for(process.wait(), timeout=40)
        assert exit_code == 0

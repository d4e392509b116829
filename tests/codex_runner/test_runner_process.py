"""codex-runner as a real process: least-privilege child environment, heartbeat, metrics, drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs.contracts import RESTART_HANDOVER
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import DEAD_PROXY, new_request, publish_run, wait_event, wait_terminal
from tests.fakes.codex_home import FAKE_API_KEY
from tests.fakes.fake_model import FakeModel, slow_reply
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.codex

PLANTED_SLACK_TOKEN = "xoxb-planted-0000000000-secret-for-the-ingress-only"
ALLOWED_CHILD_ENV = {
    "PATH",
    "HOME",
    "CODEX_HOME",
    "OPENAI_API_KEY",
    "BROKER_API_BASE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    # Codex's own git config (credential helper, co-author hook) and a headless shell
    "GIT_CONFIG_GLOBAL",
    "GIT_TERMINAL_PROMPT",
    "GH_PROMPT_DISABLED",
}


@pytest.fixture
def runner_process(
    tmp_path: Path, data_root: Path, key_prefix: str, redis_url: str
) -> Iterator[subprocess.Popen]:
    metrics_port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "REDIS_URL": redis_url,
        "KEY_PREFIX": key_prefix,
        "SHARD_COUNT": "4",
        "DATA_ROOT": str(data_root),
        "INSTANCE_ID": "proc-runner",
        "METRICS_PORT": str(metrics_port),
        "OPENAI_API_KEY": FAKE_API_KEY,
        "SLACK_BOT_TOKEN": PLANTED_SLACK_TOKEN,
        "FEISHU_APP_SECRET": "feishu-planted-secret",
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "DRAIN_GRACE_S": "3",
        "MAX_CONCURRENT_TURNS": "3",
        "HEARTBEAT_INTERVAL_S": "0.3",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "codex_broker.codex_runner"],
        cwd=tmp_path,  # no stray .env
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    process.metrics_port = metrics_port  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _app_server_pid(runner_pid: int) -> int | None:
    for child in _children(runner_pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"app-server" in cmdline:
            return child
    return None


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry]
    return {key.decode(): value.decode(errors="replace") for key, value in pairs}


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.read().decode()


async def test_child_env_heartbeat_metrics_and_drain(
    runner_process: subprocess.Popen, data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys
) -> None:
    heartbeat_key = keys.heartbeat("codex-runner", "proc-runner")
    await wait_for(lambda: redis.exists(heartbeat_key), timeout_s=60, what="runner heartbeat")

    fake_model.script(
        slow_reply("short " * 10, chunks=10, delay_s=0.1, match="short"),
        slow_reply("long " * 100, chunks=100, delay_s=0.2, match="long"),
    )
    short = new_request(data_root, "a short turn")
    long = new_request(data_root, "a long turn")
    await publish_run(redis, keys, short)
    await publish_run(redis, keys, long)
    await wait_event(redis, keys, short, "text_delta")
    await wait_event(redis, keys, long, "text_delta")

    pid = await asyncio.to_thread(_app_server_pid, runner_process.pid)
    assert pid is not None, "codex app-server child not found"
    child_env = await asyncio.to_thread(_environ, pid)
    assert "SLACK_BOT_TOKEN" not in child_env and "FEISHU_APP_SECRET" not in child_env
    assert not any(PLANTED_SLACK_TOKEN in value for value in child_env.values())
    assert set(child_env) <= ALLOWED_CHILD_ENV, set(child_env) - ALLOWED_CHILD_ENV
    assert child_env["OPENAI_API_KEY"] == FAKE_API_KEY
    assert child_env["CODEX_HOME"] == str((data_root / "codex-home").resolve())
    assert child_env["HTTPS_PROXY"] == DEAD_PROXY

    async def busy_heartbeat() -> dict | None:
        beat = json.loads(await redis.get(heartbeat_key) or "{}")
        return beat if beat.get("active") == 2 else None

    heartbeat = await wait_for(busy_heartbeat, timeout_s=10, what="heartbeat with 2 active turns")
    assert heartbeat["capacity"] == 3
    metrics_text = await asyncio.to_thread(_get, f"http://127.0.0.1:{runner_process.metrics_port}/metrics")  # type: ignore[attr-defined]
    assert "cb_runner_turns_started_total 2.0" in metrics_text
    assert "cb_runner_app_servers_up 1.0" in metrics_text

    # SIGTERM: the short turn finishes within the 3 s grace, the long one is interrupted.
    runner_process.send_signal(signal.SIGTERM)
    short_events = await wait_terminal(redis, keys, short, timeout_s=30)
    long_events = await wait_terminal(redis, keys, long, timeout_s=30)
    assert short_events[-1].kind == "completed"
    assert long_events[-1].kind == "interrupted"
    assert (long_events[-1].text or "").startswith(RESTART_HANDOVER)
    assert await asyncio.to_thread(runner_process.wait, 30) == 0
    assert not await asyncio.to_thread(os.path.exists, f"/proc/{pid}"), "the app-server outlived the runner"
    assert not await redis.exists(heartbeat_key)

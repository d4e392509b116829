"""The deployment red-team command: every probe stopped when sealed, the same probes through unsealed.

`python -m codex_broker.codex_runner.redteam` is what an operator runs inside a compose/k8s
runner container (docs/security.md); here it runs beside a DATA_ROOT with planted secrets, the
test Redis and the real http-api serving its session address (127.0.0.42).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.conftest import REDIS_URL
from tests.fakes.codex_home import write_codex_home
from tests.http_api.jobs_stack import Stack, running_stack

SESSION_HOST = "127.0.0.42"

pytestmark = pytest.mark.codex


def plant(data_root: Path) -> None:
    write_codex_home(paths.codex_home(data_root), "http://127.0.0.1:9/v1")
    (paths.codex_home(data_root) / "auth.json").write_text('{"OPENAI_API_KEY": "planted-auth"}')
    databases = paths.codex_home(data_root) / "sqlite"
    databases.mkdir(exist_ok=True)
    (databases / "state_5.sqlite").write_text("planted-thread-state")
    other = paths.session_workspace(data_root, "slack:C1:other")
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("planted-other-session")
    for tree, name in (("secrets", "redis-password"), ("logs", "orchestrator/0.jsonl"), ("jobs", "j1/out")):
        target = data_root / tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"planted-{tree}")


def run_redteam(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    port = stack.base.rsplit(":", 1)[1]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(stack.data_root.parent),
        "DATA_ROOT": str(stack.data_root),
        "REDIS_URL": REDIS_URL,
        "BROKER_API_BASE": f"http://{SESSION_HOST}:{port}",
    }
    return subprocess.run(
        [sys.executable, "-m", "codex_broker.codex_runner.redteam", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def stack(keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    sync_redis = SyncRedis.from_url(redis_url)
    try:
        with running_stack(
            sync_redis, keys, key_prefix, redis_url, tmp_path, SESSION_API_HOST=SESSION_HOST
        ) as running:
            plant(running.data_root)
            yield running
    finally:
        for key in sync_redis.scan_iter(match=f"{key_prefix}:*", count=1000):
            sync_redis.delete(key)
        sync_redis.close()


def test_every_probe_is_stopped_in_the_sealed_session_and_its_own_paths_work(stack: Stack) -> None:
    done = run_redteam(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 11 and all(line.startswith("ok  ") for line in lines), done.stdout
    assert "planted" not in done.stdout + done.stderr


def test_without_the_profile_the_same_probes_get_through(stack: Stack) -> None:
    """So that the test above cannot pass because a probe is broken."""
    done = run_redteam(stack, "--unsealed")
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    through = {line.split(": ")[0].removeprefix("FAIL  ") for line in failed}
    assert {
        "list other sessions",
        "read Codex's auth",
        "read Codex's thread databases",
        "read the broker's secrets",
        "read the logs",
        "read job directories",
        "connect to Redis",
    } <= through, done.stdout

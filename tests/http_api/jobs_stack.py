"""The background-job stack of the integration tests: the real http-api and a real rq worker
process (and with it the pinned Codex's sandbox) on a real Redis, plus the probes around it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis import Redis as SyncRedis

from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.keys import Keys
from tests.helpers import free_port
from tests.http_api.support import (
    delete_rq_keys,
    make_session,
    service_env,
    start_process,
    stop_process,
    wait_http,
)

FAKE_SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-fake-secret-token",
    "OPENAI_API_KEY": "sk-fakefakefakefakefake",
    "BROKER_ADMIN_TOKEN": "admin-fake-secret",
}


def wait(probe: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    logs: Path
    redis: SyncRedis
    keys: Keys
    data_root: Path
    worker: subprocess.Popen[bytes] | None = None
    job_ids: list[str] = field(default_factory=list)

    def start_worker(self) -> None:
        self.worker = start_process("codex_broker.http_api.worker", self.env, self.logs / "worker.log")
        wait(lambda: self.redis.keys(self.keys.heartbeat("http-api-worker", "*")), "worker heartbeat")

    def kill_worker(self) -> None:
        assert self.worker is not None
        stop_process(self.worker, sig=signal.SIGKILL)
        self.worker = None

    def job(self, job_id: str, token: str) -> dict[str, Any]:
        response = httpx.get(f"{self.base}/jobs/{job_id}", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return response.json()["job"]


@contextmanager
def running_stack(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path, **extra: str
) -> Iterator[Stack]:
    data_root = tmp_path / "data"
    port = free_port()
    env = service_env(
        key_prefix,
        redis_url,
        data_root,
        HTTP_API_PORT=str(port),
        JOB_WORKERS="2",
        JOB_STALE_AFTER_S="2",
        JOB_RECOVER_INTERVAL_S="0.5",
        JOB_KILL_GRACE_S="1",
        **FAKE_SECRETS,
        **extra,
    )
    api = start_process("codex_broker.http_api", env, tmp_path / "logs" / "api.log")
    running = Stack(f"http://127.0.0.1:{port}", env, tmp_path / "logs", sync_redis, keys, data_root)
    try:
        wait_http(f"{running.base}/healthz")
        running.start_worker()
        yield running
    finally:
        if running.worker is not None:
            stop_process(running.worker, sig=signal.SIGKILL)
        stop_process(api)
        delete_rq_keys(sync_redis, keys.rq_queue_name, running.job_ids)


def session_in(stack: Stack, root: str = "500.1") -> tuple[Coordinates, str, Path]:
    coords = Coordinates(platform="slack", conversation_id="CJOB", root_message_id=root)
    token, workspace = make_session(stack.redis, stack.keys, coords, stack.data_root)
    return coords, token, workspace


def register(stack: Stack, coords: Coordinates, token: str, **body: Any) -> httpx.Response:
    payload = {
        "platform": coords.platform,
        "conversationId": coords.conversation_id,
        "rootMessageId": coords.root_message_id,
        **body,
    }
    response = httpx.post(
        f"{stack.base}/jobs/register", json=payload, headers={"authorization": f"Bearer {token}"}
    )
    if response.status_code == 201:
        stack.job_ids.append(response.json()["jobId"])
    return response


def job_processes(job_id: str) -> set[tuple[int, str]]:
    """(host pid, start time) of every live process carrying the job's JOB_ID: the sandbox's
    helpers and the script's, whose pids inside the sandbox's namespace mean nothing here."""
    marker = f"JOB_ID={job_id}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found.add((int(entry.name), fields[19]))  # field 22 of stat: start time
    return found

"""The services do their work as their own Redis ACL users (k8s/base/redis/users.acl): a
background job through the real http-api and rq worker processes, and a Codex turn through the
real runner, each logged in as its own user on a redis-server started by start-redis.sh. A
command the rules forgot would fail them with NOPERM."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from codex_broker.libs import paths, session_token
from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import (
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.deploy.test_redis_acl import _passwords, _start
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel, text_reply
from tests.helpers import free_port
from tests.http_api.support import (
    job_callback_events,
    make_session,
    service_env,
    start_process,
    stop_process,
    wait_http,
)

KEYS = Keys(prefix="cb", shard_count=4)  # the prefix the ACL patterns name


def _url(port: int, user: str, password: str) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port}/0"


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    passwords = _passwords(tmp_path / "secrets")
    port = free_port()
    proc = _start(tmp_path, tmp_path / "secrets", port)
    try:
        deadline = time.monotonic() + 15
        probe = SyncRedis.from_url(
            _url(port, "orchestrator", passwords["orchestrator"]), socket_connect_timeout=1
        )
        while True:
            try:
                probe.ping()
                break
            except Exception:
                assert proc.poll() is None and time.monotonic() < deadline, "ACL redis-server did not start"
                time.sleep(0.05)
        yield port, passwords
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _wait(probe: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


JOB = """
curl -sS -X POST "$BROKER_API_BASE/jobs/$JOB_ID/complete" -H "authorization: Bearer $JOB_TOKEN" \
  -H 'content-type: application/json' -d '{"summary":"acl ok"}'
"""


def test_a_job_runs_with_the_http_api_and_worker_users(
    acl_server: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, passwords = acl_server
    data_root = tmp_path / "data"
    api_port = free_port()

    def env(user: str) -> dict[str, str]:
        values = service_env("cb", f"redis://127.0.0.1:{port}/0", data_root, HTTP_API_PORT=str(api_port))
        return {**values, "REDIS_USERNAME": user, "REDIS_PASSWORD": passwords[user], "JOB_WORKERS": "1"}

    orchestrator = SyncRedis.from_url(_url(port, "orchestrator", passwords["orchestrator"]))
    coords = Coordinates(platform="slack", conversation_id="CACL", root_message_id="1.1")
    token, _ = make_session(orchestrator, KEYS, coords, data_root)
    logs = tmp_path / "logs"
    api = start_process("codex_broker.http_api", env("http-api"), logs / "api.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"http://127.0.0.1:{api_port}/healthz")
        worker = start_process("codex_broker.http_api.worker", env("worker"), logs / "worker.log")
        created = httpx.post(
            f"http://127.0.0.1:{api_port}/jobs/register",
            json={"platform": "slack", "conversationId": "CACL", "rootMessageId": "1.1", "script": JOB},
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        events = _wait(
            lambda: job_callback_events(orchestrator, KEYS, coords.session_key), "the job's callback"
        )
        assert events[-1]["job"]["summary"] == "acl ok"
        status = httpx.get(f"http://127.0.0.1:{api_port}/admin/api/status", timeout=10)
        assert status.status_code == 401  # and the admin API still wants its token
    finally:
        if worker is not None:
            stop_process(worker, sig=signal.SIGTERM)
        stop_process(api)
        orchestrator.close()
    for name in ("api.log", "worker.log"):
        text = (logs / name).read_text(errors="replace")
        assert "NOPERM" not in text and "NoPermission" not in text, text[-3000:]
        assert passwords["worker"] not in text and passwords["http-api"] not in text


@pytest.mark.codex
async def test_a_turn_runs_with_the_runner_user(
    acl_server: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, passwords = acl_server
    data_root = tmp_path / "data"
    with FakeModel() as fake_model:
        write_codex_home(paths.codex_home(data_root), fake_model.base_url)
        fake_model.script(text_reply("hello under ACL"))
        orchestrator = Redis.from_url(_url(port, "orchestrator", passwords["orchestrator"]))
        settings = runner_settings(data_root, "cb", _url(port, "codex-runner", passwords["codex-runner"]))
        try:
            async with running_runner(settings):
                request = new_request(data_root, "hi")
                await publish_run(orchestrator, KEYS, request)
                events = await wait_terminal(orchestrator, KEYS, request)
                # the runner minted the session's API token under its own user (file + hashes)
                token = session_token.token_file(data_root.resolve(), request.session_key).read_text()
                owner = await orchestrator.get(KEYS.session_by_token(session_token.token_sha256(token)))
        finally:
            await orchestrator.aclose()
    assert events[-1].kind == "completed", events[-1].text
    assert "hello under ACL" in "".join(e.text or "" for e in events)
    assert owner == request.session_key.encode()

"""Red team: a background job tries to reach what is not its own session's, through the real
worker and the pinned Codex's sandbox.

A prompt-injected turn can register any script, so each probe below is what such a script would
try: list the sessions, read another session's file, CODEX_HOME's auth and config, logs, the
Redis files, the outbox, another job's output, and the platform tokens in the environment of the
worker's processes. A control run with the sandbox unavailable and JOBS_UNSANDBOXED=true runs the
same probes and must reach every planted secret, so the sealed run cannot pass because a probe
broke. Markers around each probe keep the assertions independent of the shell's wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis import Redis as SyncRedis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.conftest import REDIS_URL
from tests.http_api.jobs_stack import FAKE_SECRETS, Stack, register, running_stack, session_in, wait
from tests.http_api.support import job_callback_events

REDIS_PORT = urlsplit(REDIS_URL).port or 6379  # the tests' Redis, on the machine's loopback

pytestmark = pytest.mark.codex

FOREIGN_SESSION = "slack:CJOB:999.1"
SECRETS = {
    "foreign": "planted-foreign-workspace-7f3a",
    "auth": "planted-codex-auth-91bd",
    "config": "planted-codex-config-0c77",
    "log": "planted-log-line-5c21",
    "redis": "planted-redis-dump-e2a9",
    "outbox": "planted-outbox-copy-3b18",
    "job": "planted-other-job-output-6d40",
}
ENVIRON_SECRET = FAKE_SECRETS["SLACK_BOT_TOKEN"]


def plant(data_root: Path) -> dict[str, Path]:
    files = {
        "foreign": paths.session_workspace(data_root, FOREIGN_SESSION) / "notes.txt",
        "auth": paths.codex_home(data_root) / "auth.json",
        "config": paths.codex_home(data_root) / "config.toml",
        "log": data_root / "logs" / "orchestrator" / "00.jsonl",
        "redis": data_root / "redis" / "dump.rdb",
        "outbox": data_root / "outbox" / "upload.bin",
        "job": paths.job_dir(data_root, "other-job") / "output.log",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SECRETS[name])
    return files


def probe(name: str, command: str) -> str:
    return f"echo '<<{name}:'\"$( {command} 2>&1 )\"'>>'"


def probe_script(data_root: Path, files: dict[str, Path]) -> str:
    probes = {
        "ls_sessions": f"ls {data_root / 'sessions'}",
        "ls_jobs": f"ls {data_root / 'jobs'}",
        **{f"read_{name}": f"cat {path}" for name, path in files.items()},
        # not the job's own script and probe output, which name the pattern
        "grep_data": f"grep -r --exclude=script.sh --exclude=probes.txt planted- {data_root}",
        "environ": "grep -a -o 'SLACK_BOT_TOKEN=[[:alnum:]-]*' /proc/[0-9]*/environ",
        # the shared Redis on the machine's loopback: the job's network is its own
        "redis_socket": 'python3 -c "import socket; '
        f"s=socket.create_connection(('127.0.0.1', {REDIS_PORT}), 3); "
        "s.sendall(b'PING\\r\\n'); print(s.recv(7))\"",
    }
    lines = [f"{probe(name, command)} >> probes.txt" for name, command in probes.items()]
    callback = (
        'curl -sS -X POST "$BROKER_API_BASE/jobs/$JOB_ID/complete" -H "x-job-token: $JOB_TOKEN" '
        "-H 'content-type: application/json' -d '{\"summary\":\"probed\"}'"
    )
    return "\n".join(["echo own > written.txt", *lines, callback, ""])


def probe_results(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"<<(\w+):(.*?)>>", text, re.S)}


def run_probes(stack: Stack) -> tuple[str, Path, list[dict[str, Any]]]:
    files = plant(stack.data_root)
    coords, token, workspace = session_in(stack, "600.1")
    created = register(stack, coords, token, script=probe_script(stack.data_root, files))
    assert created.status_code == 201, created.text
    events = wait(
        lambda: job_callback_events(stack.redis, stack.keys, coords.session_key), "the job's callback"
    )
    job = wait(lambda: (j := stack.job(created.json()["jobId"], token))["status"] == "completed" and j, "end")
    assert job["summary"] == "probed"
    return (workspace / "probes.txt").read_text(), workspace, events


def worker_heartbeat(stack: Stack) -> dict[str, Any]:
    keys = stack.redis.keys(stack.keys.heartbeat("http-api-worker", "*"))
    return json.loads(stack.redis.get(keys[0]) or "{}")


@pytest.fixture
def sealed(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(sync_redis, keys, key_prefix, redis_url, tmp_path) as stack:
        yield stack


def test_a_job_reaches_nothing_but_its_own_workspace_and_its_thread(sealed: Stack) -> None:
    assert worker_heartbeat(sealed)["sandbox"] == "sandboxed"
    output, workspace, events = run_probes(sealed)
    results = probe_results(output)
    assert set(results) == {
        "ls_sessions",
        "ls_jobs",
        "grep_data",
        "environ",
        "redis_socket",
        *(f"read_{name}" for name in SECRETS),
    }
    redis_probe = results["redis_socket"]
    assert "PONG" not in redis_probe and "Connection refused" in redis_probe, redis_probe
    for secret in [*SECRETS.values(), ENVIRON_SECRET]:
        assert secret not in output, secret
    assert "Permission denied" in results["ls_sessions"]
    assert "Permission denied" in results["ls_jobs"]
    for name in SECRETS:
        denied = results[f"read_{name}"]
        assert "Permission denied" in denied or "No such file" in denied, (name, denied)
    assert results["environ"] == ""  # its own pid namespace: no broker process to read
    # what is its own works: writing its workspace, posting back to its thread
    assert (workspace / "written.txt").read_text() == "own\n"
    assert [e["job"]["status"] for e in events] == ["complete"]


def test_control_run_without_the_sandbox_reaches_every_secret(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-codex-here")
    with running_stack(
        sync_redis, keys, key_prefix, redis_url, tmp_path, CODEX_BIN=missing, JOBS_UNSANDBOXED="true"
    ) as stack:
        beat = worker_heartbeat(stack)
        assert (beat["sandbox"], beat["ready"]) == ("unsandboxed", True)
        assert "Codex CLI was not found" in beat["sandbox_reason"]
        output, _, _ = run_probes(stack)
    results = probe_results(output)
    for name, secret in SECRETS.items():
        assert secret in results[f"read_{name}"], name
        assert secret in results["grep_data"], name
    assert paths.session_dir(Path("/"), FOREIGN_SESSION).name in results["ls_sessions"]
    assert ENVIRON_SECRET in results["environ"]
    assert "+PONG" in results["redis_socket"], results["redis_socket"]


def test_without_a_sandbox_the_worker_refuses_jobs_and_says_why(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    # stands in for a host without user namespaces: what Codex's bubblewrap prints there
    broken = tmp_path / "codex"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    broken.chmod(0o755)
    with running_stack(sync_redis, keys, key_prefix, redis_url, tmp_path, CODEX_BIN=str(broken)) as stack:
        beat = worker_heartbeat(stack)
        assert (beat["sandbox"], beat["ready"]) == ("refused", False)
        assert "No permissions to create new namespace" in beat["sandbox_reason"]
        coords, token, workspace = session_in(stack, "600.2")
        created = register(stack, coords, token, script="echo ran > ran.txt\n")
        assert created.status_code == 201, created.text
        job = wait(
            lambda: (j := stack.job(created.json()["jobId"], token))["status"] == "failed" and j, "fail"
        )
        events = job_callback_events(stack.redis, stack.keys, coords.session_key)
    assert "No permissions to create new namespace" in job["summary"]
    assert "JOBS_UNSANDBOXED=true" in job["summary"]
    assert [e["job"]["status"] for e in events] == ["fail"]
    assert not (workspace / "ran.txt").exists()
    assert "jobs refused" in (stack.logs / "worker.log").read_text()


NETWORK_PROBE = """
env | grep '^CODEX_SANDBOX_NETWORK' > net.txt
curl -sS -m 5 -o /dev/null "$BROKER_API_BASE/healthz" 2>> net.txt
echo "curl=$?" >> net.txt
"""


def test_a_job_follows_its_sessions_network_switch(sealed: Stack) -> None:
    coords, token, workspace = session_in(sealed, "600.3")
    sealed.redis.hset(sealed.keys.session(coords.session_key), "cfg_network", "0")  # /config network off
    created = register(sealed, coords, token, script=NETWORK_PROBE)
    assert created.status_code == 201, created.text
    job = wait(
        lambda: (j := sealed.job(created.json()["jobId"], token))["status"] == "completed" and j, "end"
    )
    assert job["summary"] == "script exited 0"
    net = (workspace / "net.txt").read_text()
    assert "CODEX_SANDBOX_NETWORK_DISABLED=1" in net
    assert "curl=0" not in net and "curl=" in net

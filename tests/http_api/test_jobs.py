"""Background jobs end to end: the real http-api and a real rq worker process on a real Redis.

register → the script calls back → InboundEvents `job_callback` reach the session's job-callback
stream; a job past its limit is killed and reported; restart_on_boot jobs come back after the
worker is killed, the others are reported failed. (The Codex turn a callback starts is covered
by the orchestrator's end-to-end suite.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis

from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.keys import Keys
from tests.http_api.jobs_stack import (
    FAKE_SECRETS,
    Stack,
    job_processes,
    register,
    running_stack,
    session_in,
    wait,
)
from tests.http_api.support import job_callback_events, token_sha

pytestmark = pytest.mark.codex  # every job runs through the pinned Codex's sandbox


@pytest.fixture
def stack(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(sync_redis, keys, key_prefix, redis_url, tmp_path) as running:
        yield running


CALLBACKS = """
env | sort > env.txt
curl -sS -X POST "$BROKER_API_BASE/jobs/$JOB_ID/event" -H "x-job-token: $JOB_TOKEN" \
  -H 'content-type: application/json' -d '{"summary":"half way","detailsJson":"{\\"progress\\": 50}"}'
curl -sS -X POST "$BROKER_API_BASE/jobs/$JOB_ID/complete" -H "authorization: Bearer $JOB_TOKEN" \
  -H 'content-type: application/json' -d '{"summary":"all green"}'
"""


def test_job_callbacks_reach_the_session(stack: Stack) -> None:
    coords, token, workspace = session_in(stack)
    (workspace / "sub").mkdir()
    created = register(stack, coords, token, script=CALLBACKS, cwd="sub", kind="watch_ci")
    assert created.status_code == 201, created.text
    job_id = created.json()["jobId"]
    sk = coords.session_key
    events = wait(
        lambda: (
            len(job_callback_events(stack.redis, stack.keys, sk)) >= 2
            and job_callback_events(stack.redis, stack.keys, sk)
        ),
        "two callbacks",
    )
    assert [e["event_id"] for e in events] == [f"job:{job_id}:1", f"job:{job_id}:2"]
    assert [e["kind"] for e in events] == ["job_callback", "job_callback"]
    assert [e["job"]["status"] for e in events] == ["event", "complete"]
    assert events[0]["job"]["details"] == {"progress": 50}
    assert events[1]["job"]["summary"] == "all green"
    assert "all green" in events[1]["text"]
    # the script then exits 0; the worker sees the job already finished and reports nothing more
    rq_key = f"rq:job:{job_id}-0"
    wait(lambda: stack.redis.hget(rq_key, "status") == b"finished", "rq job finished")
    assert len(job_callback_events(stack.redis, stack.keys, sk)) == 2
    assert stack.redis.xlen(stack.keys.inbound_stream_for(sk)) == 0  # platform streams stay the ingresses'
    job = stack.job(job_id, token)
    assert (job["status"], job["kind"], job["attempts"]) == ("completed", "watch_ci", 0)
    env_names = {line.split("=", 1)[0] for line in (workspace / "sub" / "env.txt").read_text().splitlines()}
    expected = {
        "CHAT_PLATFORM",
        "CHAT_CONVERSATION_ID",
        "CHAT_ROOT_MESSAGE_ID",
        "SESSION_KEY",
        "SESSION_WORKSPACE",
        "REPOS_ROOT",
        "BROKER_API_BASE",
        "JOB_ID",
        "JOB_TOKEN",
        "PATH",
        "HOME",
    }
    assert expected <= env_names
    added_by_proxy = {n for n in env_names if "PROXY" in n.upper() or n.startswith("CODEX_NETWORK_")}
    assert env_names - expected - added_by_proxy <= {"LANG", "PWD", "SHLVL", "_", "OLDPWD"}
    env_text = (workspace / "sub" / "env.txt").read_text()
    for secret in FAKE_SECRETS.values():
        assert secret not in env_text
    # callbacks after the end, and with a wrong token
    finished = httpx.post(f"{stack.base}/jobs/{job_id}/event", headers={"x-job-token": "nope"}, json={})
    assert (finished.status_code, finished.json()["error"]) == (400, "invalid_job_token")
    assert httpx.post(f"{stack.base}/jobs/{job_id}/heartbeat", json={}).json()["error"] == "invalid_job_token"
    unknown = httpx.post(f"{stack.base}/jobs/{'f' * 32}/complete", json={})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_job")


def test_job_past_its_limit_is_killed_and_reported(stack: Stack) -> None:
    coords, token, workspace = session_in(stack, "500.2")
    # the script gets its SIGTERM through the sandbox (and its grace) before the SIGKILL
    script = "trap 'echo term > term.txt; exit 5' TERM\necho started\nsleep 300 &\nwait\n"
    created = register(stack, coords, token, script=script, timeoutSeconds=2, restartOnBoot=False)
    assert created.status_code == 201, created.text
    job_id = created.json()["jobId"]
    wait(lambda: job_processes(job_id), "the job running")
    events = wait(lambda: job_callback_events(stack.redis, stack.keys, coords.session_key), "timeout report")
    assert events[0]["job"]["status"] == "timeout"
    assert "started" in events[0]["job"]["details"]["outputTail"]
    job = stack.job(job_id, token)
    assert job["status"] == "timeout"
    assert (workspace / "term.txt").read_text().strip() == "term"
    # the sleep included: the sandbox's pid namespace goes with it
    wait(lambda: not job_processes(job_id), "the job's processes to be gone")


def test_restart_on_boot_after_worker_restart(stack: Stack) -> None:
    coords, token, workspace = session_in(stack, "500.3")
    restartable = register(stack, coords, token, script="echo run >> runs.txt\nexec sleep 300\n", kind="keep")
    once = register(stack, coords, token, command="sleep 300", kind="once", restart_on_boot="false")
    assert restartable.status_code == once.status_code == 201
    keep_id, once_id = restartable.json()["jobId"], once.json()["jobId"]
    wait(
        lambda: (
            stack.job(keep_id, token)["status"] == "running"
            and stack.job(once_id, token)["status"] == "running"
        ),
        "both running",
    )
    first_attempt = wait(lambda: job_processes(keep_id), "the first attempt's processes")
    stack.kill_worker()
    stack.start_worker()
    wait(
        lambda: (
            stack.job(keep_id, token)["attempts"] == 1 and stack.job(keep_id, token)["status"] == "running"
        ),
        "re-enqueued job running again",
        60,
    )
    wait(
        lambda: (workspace / "runs.txt").exists() and len((workspace / "runs.txt").read_text().split()) == 2,
        "second run",
    )
    assert not first_attempt & job_processes(keep_id)
    once_job = wait(
        lambda: (j := stack.job(once_id, token))["status"] == "failed" and j, "non-restartable reported"
    )
    assert "restart_on_boot" in once_job["summary"]
    statuses = {
        (e["job"]["job_id"], e["job"]["status"])
        for e in job_callback_events(stack.redis, stack.keys, coords.session_key)
    }
    assert (once_id, "fail") in statuses
    cancelled = httpx.post(
        f"{stack.base}/jobs/{keep_id}/cancel", headers={"authorization": f"Bearer {token}"}
    )
    assert cancelled.status_code == 202
    wait(lambda: stack.job(keep_id, token)["status"] == "cancelled", "cancel")
    wait(lambda: not job_processes(keep_id), "the cancelled job's processes to be gone")


def test_register_errors(stack: Stack) -> None:
    coords, token, _ = session_in(stack, "500.4")
    cases = [
        ({"platform": "irc", "script": "true"}, 400, "invalid_platform"),
        ({"script": "true", "timeoutSeconds": 0}, 400, "invalid_timeout"),
        ({"script": "true", "timeoutSeconds": 5 * 3600 + 1}, 400, "invalid_timeout"),
        ({}, 400, "missing_required_body"),
        ({"script": "true", "command": "true"}, 400, "provide_exactly_one_job_source"),
        ({"script": "true", "cwd": "../.."}, 400, "path_not_allowed"),
        ({"script": "true", "cwd": "/tmp"}, 400, "path_not_allowed"),
        ({"script": "true", "cwd": "missing-dir"}, 400, "invalid_cwd"),
        ({"script": "true", "kind": "bad kind!"}, 400, "invalid_field"),
    ]
    for body, status, code in cases:
        response = register(stack, coords, token, **body)
        assert (response.status_code, response.json()["error"]) == (status, code), body
    legacy = httpx.post(
        f"{stack.base}/jobs/register",
        json={"channel_id": "CJOB", "thread_ts": "500.4", "command": "true", "restart_on_boot": False},
        headers={"x-broker-session-token": token},
    )
    assert legacy.status_code == 201, legacy.text
    stack.job_ids.append(legacy.json()["jobId"])
    no_token = httpx.post(
        f"{stack.base}/jobs/register", json={"channel_id": "CJOB", "thread_ts": "500.4", "script": "true"}
    )
    assert (no_token.status_code, no_token.json()["error"]) == (401, "session_token_required")
    other = Coordinates(platform="slack", conversation_id="CJOB", root_message_id="999.9")
    mismatch = register(stack, other, token, script="true")
    assert (mismatch.status_code, mismatch.json()["error"]) == (403, "session_mismatch")
    # a token whose session record is gone (deleted from the admin page)
    gone = Coordinates(platform="slack", conversation_id="CJOB", root_message_id="777.7")
    stack.redis.set(stack.keys.session_token_hash(gone.session_key), token_sha("ghost-token"))
    stack.redis.set(stack.keys.session_by_token(token_sha("ghost-token")), gone.session_key)
    unknown = register(stack, gone, "ghost-token", script="true")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_session")
    job_view = httpx.get(f"{stack.base}/jobs/{legacy.json()['jobId']}")
    assert (job_view.status_code, job_view.json()["error"]) == (401, "session_token_required")

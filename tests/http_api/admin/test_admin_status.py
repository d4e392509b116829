"""GET /admin/api/status: services, sessions, runs, queues, jobs, dead letters, redacted log tail."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from redis.asyncio import Redis

from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from tests.http_api.admin.conftest import seed_session

SLACK_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnop"


async def seed_world(redis: Redis, keys: Keys, data_root: Path) -> dict[str, str]:
    for service, instance, details in (
        ("orchestrator", "orch-1", None),
        ("codex-runner", "runner-1", {"active": 1, "capacity": 4}),
    ):
        beat = Heartbeat(
            redis,
            keys,
            service,
            instance,
            ttl_s=30,
            started_at=time.time(),
            details=(lambda d=details: d) if details else None,
        )
        await beat.beat()
    slack = await seed_session(redis, keys, data_root, state="running", active_run_id="run-s")
    feishu = await seed_session(redis, keys, data_root, platform="feishu", conversation="oc_1", root="om_1")
    await redis.rpush(keys.session_queue(slack), "{}", "{}")  # type: ignore[misc]
    for run_id, sk in (("run-s", slack), ("run-f", feishu)):
        await redis.hset(
            keys.run(run_id), mapping={"session_key": sk, "status": "running", "runner_id": "runner-1"}
        )  # type: ignore[misc]
        await redis.zadd(keys.active_runs, {run_id: 1_700_000_000_000})
    inbound = keys.inbound_stream_for(slack)
    await redis.xgroup_create(inbound, GROUP_ORCHESTRATOR, id="0", mkstream=True)
    for i in range(3):
        await redis.xadd(inbound, {"data": f"{i}"})
    await redis.xreadgroup(GROUP_ORCHESTRATOR, "c1", {inbound: ">"}, count=2)  # 2 pending, lag 1
    job_callbacks = keys.job_callback_stream_for(slack)
    await redis.xgroup_create(job_callbacks, GROUP_ORCHESTRATOR, id="0", mkstream=True)
    await redis.xadd(job_callbacks, {"data": "{}"})  # lag 1
    await redis.xadd(keys.dead_letter_stream, {"reason": "bad"})
    await redis.hset(
        keys.job("j1"),
        mapping={
            "session_key": slack,
            "status": "running",
            "kind": "watch",  # type: ignore[misc]
            "token_hash": "deadbeef",
            "command": "x" * 2000,
        },
    )
    await redis.zadd(keys.jobs_index, {"j1": 2})
    await redis.hset(keys.job("j2"), mapping={"session_key": feishu, "status": "done"})  # type: ignore[misc]
    await redis.zadd(keys.jobs_index, {"j2": 1})

    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    orch_logs = data_root / "logs" / "orchestrator"
    orch_logs.mkdir(parents=True)
    filler = "".join(
        json.dumps({"ts": f"2026-01-01T00:00:{i % 60:02d}", "level": "INFO", "msg": "filler " + "y" * 200})
        + "\n"
        for i in range(20_000)
    )
    (orch_logs / f"{hour}.jsonl").write_text(
        filler
        + json.dumps({"ts": "2099-01-01T00:00:00", "level": "WARNING", "msg": f"leaked {SLACK_TOKEN}"})
        + "\n"
    )
    sessions_dir = data_root / "logs" / "sessions" / "x"
    sessions_dir.mkdir(parents=True)
    (sessions_dir / f"{hour}.jsonl").write_text(json.dumps({"msg": "per-session line"}) + "\n")
    return {"slack": slack, "feishu": feishu, "inbound": inbound, "job_callbacks": job_callbacks}


async def test_status_reports_everything_bounded_and_redacted(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    world = await seed_world(redis, keys, data_root)
    response = await api.get("/admin/api/status")
    assert response.status_code == 200
    body = response.json()

    services = {(s["service"], s["instance"]): s for s in body["services"]}
    assert services[("codex-runner", "runner-1")]["capacity"] == 4
    assert services[("orchestrator", "orch-1")]["age_s"] >= 0

    assert body["sessions"]["count"] == 2
    assert {row["session_key"] for row in body["sessions"]["items"]} == {world["slack"], world["feishu"]}
    assert {run["run_id"] for run in body["active_runs"]["items"]} == {"run-s", "run-f"}

    streams = {s["stream"]: s for s in body["queues"]["streams"]}
    inbound = streams[world["inbound"]]
    assert inbound["length"] == 3
    assert inbound["groups"] == [{"name": "orchestrator", "consumers": 1, "pending": 2, "lag": 1}]
    job_callbacks = streams[world["job_callbacks"]]
    assert job_callbacks["length"] == 1
    assert job_callbacks["groups"] == [{"name": "orchestrator", "consumers": 0, "pending": 0, "lag": 1}]
    assert streams[keys.runs_stream]["length"] == 0
    assert keys.runner_control_stream("runner-1") in streams
    assert keys.outbound_stream("slack") in streams and keys.outbound_stream("feishu") in streams
    assert body["queues"]["sessions"] == [{"session_key": world["slack"], "length": 2}]
    assert body["dead_letter"] == {"count": 1}

    assert body["jobs"]["count"] == 2
    job = body["jobs"]["items"][0]
    assert job["job_id"] == "j1" and job["token_hash"] == "[REDACTED]"
    assert len(job["command"]) <= 501

    logs = body["logs"]
    assert 0 < len(logs) <= 100
    assert logs[-1]["level"] == "WARNING" and logs[-1]["service"] == "orchestrator"
    assert SLACK_TOKEN not in response.text
    assert "per-session line" not in response.text  # fan-out dirs are not services
    assert len(response.content) < 200_000


async def test_status_platform_filter(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    world = await seed_world(redis, keys, data_root)
    body = (await api.get("/admin/api/status", params={"platform": "feishu"})).json()
    assert body["platform"] == "feishu"
    assert [row["session_key"] for row in body["sessions"]["items"]] == [world["feishu"]]
    assert body["sessions"]["count"] == 1
    assert [run["run_id"] for run in body["active_runs"]["items"]] == ["run-f"]
    assert [job["job_id"] for job in body["jobs"]["items"]] == ["j2"]
    streams = [s["stream"] for s in body["queues"]["streams"]]
    assert keys.outbound_stream("feishu") in streams and keys.outbound_stream("slack") not in streams
    assert body["queues"]["sessions"] == []


async def test_status_rejects_unknown_platform(api: httpx.AsyncClient) -> None:
    response = await api.get("/admin/api/status", params={"platform": "teams"})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": "invalid_platform",
        "field": "platform",
        "allowed": ["slack", "feishu", "discord"],
    }


async def test_status_of_an_empty_deployment(api: httpx.AsyncClient) -> None:
    body = (await api.get("/admin/api/status")).json()
    assert body["services"] == [] and body["sessions"] == {"count": 0, "items": []}
    assert body["jobs"] == {"count": 0, "items": []} and body["logs"] == []


async def test_jobs_endpoint(api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path) -> None:
    await seed_world(redis, keys, data_root)
    everything = (await api.get("/admin/api/jobs")).json()
    assert [job["job_id"] for job in everything["items"]] == ["j1", "j2"]
    slack_only = (await api.get("/admin/api/jobs", params={"platform": "slack"})).json()
    assert [job["job_id"] for job in slack_only["items"]] == ["j1"]
    assert (await api.get("/admin/api/jobs", params={"platform": "x"})).status_code == 400

"""`codex-broker status` shows what the broker is doing: active runs (session, age, runner),
sessions waiting for a run slot, running jobs, dead letters by reason, the last errors per
service, and a mix of versions across heartbeats — as text and as JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.cli.status import collect, render_text
from codex_broker.libs import activity
from codex_broker.libs.heartbeat import mixed_versions
from codex_broker.libs.keys import Keys


async def _beat(redis: Redis, keys: Keys, service: str, instance: str, version: str) -> None:
    body = {"service": service, "instance": instance, "at": time.time(), "version": version}
    await redis.set(keys.heartbeat(service, instance), json.dumps(body), ex=30)


async def _populate(redis: Redis, keys: Keys, data_root: Path) -> None:
    now_ms = int(time.time() * 1000)
    await _beat(redis, keys, "orchestrator", "orchestrator-1", "0.2.0")
    await _beat(redis, keys, "codex-runner", "codex-runner-a", "0.2.0")
    await _beat(redis, keys, "codex-runner", "codex-runner-b", "0.1.0")
    await redis.zadd(keys.active_runs, {"run-1": now_ms - 90_000, "run-2": now_ms - 5_000})
    await redis.hset(
        keys.run("run-1"),
        mapping={
            "session_key": "slack:C1:1.1",
            "runner_id": "codex-runner-a",
            "status": "running",
            "started_at_ms": str(now_ms - 80_000),
        },
    )
    await redis.hset(keys.run("run-2"), mapping={"session_key": "slack:C2:2.2", "status": "queued"})
    await redis.zadd(keys.runs_waiting, {"feishu:oc_1:om_1": now_ms - 30_000})
    await redis.rpush(keys.session_queue("feishu:oc_1:om_1"), "m1", "m2")
    # a session whose messages wait for its running turn to end (queued during a run)
    await redis.zadd(keys.sessions_index, {"slack:C1:1.1": now_ms, "slack:C9:9.9": now_ms - 1})
    await redis.rpush(keys.session_queue("slack:C1:1.1"), "m3")
    await redis.zadd(keys.jobs_index, {"job-run": 1, "job-done": 2})
    await redis.hset(
        keys.job("job-run"),
        mapping={
            "status": "running",
            "session_key": "slack:C1:1.1",
            "started_at_ms": str(now_ms - 600_000),
            "worker": "worker-1",
        },
    )
    await redis.hset(keys.job("job-done"), mapping={"status": "succeeded", "session_key": "slack:C1:1.1"})
    for reason in ("ContractError: field x", "ContractError: field y", "max deliveries (5) reached"):
        await redis.xadd(keys.dead_letter_stream, {"reason": reason, "data": "{}"})
    logs = data_root / "logs" / "ingress-slack"
    logs.mkdir(parents=True)
    records = [
        {"ts": "2026-01-01T10:00:00.000+00:00", "level": "INFO", "msg": "started"},
        {
            "ts": "2026-01-01T10:00:01.000+00:00",
            "level": "ERROR",
            "msg": "chat.postMessage failed",
            "error": "channel_not_found",
        },
    ]
    (logs / "2026-01-01T10.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


async def test_status_reports_runs_queues_jobs_dead_letters_errors_and_versions(
    redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    data_root = tmp_path / "data"
    await _populate(redis, keys, data_root)
    report = await collect(
        redis, keys, url="redis://127.0.0.1:6379/0", source="REDIS_URL", data_root=data_root
    )
    runs = {r["run_id"]: r for r in report["active_runs"]}
    assert runs["run-1"]["session_key"] == "slack:C1:1.1" and runs["run-1"]["runner_id"] == "codex-runner-a"
    assert 79 <= runs["run-1"]["age_s"] < 200  # from its start, not from when it was queued
    assert runs["run-2"]["runner_id"] is None
    [waiting] = report["queued_sessions"]
    assert waiting["session_key"] == "feishu:oc_1:om_1" and waiting["messages"] == 2
    assert report["queued_input"] == [{"session_key": "slack:C1:1.1", "messages": 1}]
    assert [j["job_id"] for j in report["running_jobs"]] == ["job-run"]
    assert report["running_jobs"][0]["worker"] == "worker-1"
    assert report["dead_letters_by_reason"] == {"ContractError": 2, "max deliveries": 1}
    assert report["last_errors"]["ingress-slack"] == [
        {
            "ts": "2026-01-01T10:00:01.000+00:00",
            "msg": "chat.postMessage failed",
            "error": "channel_not_found",
        }
    ]
    assert report["mixed_versions"] is True
    assert report["versions"] == {
        "0.1.0": ["codex-runner/codex-runner-b"],
        "0.2.0": ["codex-runner/codex-runner-a", "orchestrator/orchestrator-1"],
    }
    text = render_text(report)
    assert "versions   MIXED: 2 releases" in text
    assert "active runs 2" in text and "runner codex-runner-a" in text and "(unclaimed)" in text
    assert "queued sessions 1" in text and "running jobs 1" in text
    assert "queued input 1 sessions" in text
    assert "2  ContractError" in text
    assert "chat.postMessage failed (channel_not_found)" in text
    json.dumps(report, default=str)  # --json prints this very object


def test_one_version_is_not_a_mix_and_a_missing_one_counts_as_unknown() -> None:
    same = [
        {"service": "a", "instance": "1", "version": "1.0.0"},
        {"service": "b", "instance": "2", "version": "1.0.0"},
    ]
    assert mixed_versions(same) is None
    older = [*same, {"service": "c", "instance": "3"}]  # a release before heartbeats had versions
    assert mixed_versions(older) == {"1.0.0": ["a/1", "b/2"], "unknown": ["c/3"]}


def test_dead_letter_reasons_are_grouped_by_kind() -> None:
    assert activity.dead_letter_reason("ContractError: 1 validation error for RunEvent") == "ContractError"
    assert activity.dead_letter_reason("max deliveries (5) reached") == "max deliveries"
    assert activity.dead_letter_reason("run 3f2a9c1b0d4e7f86 not found") == "run N not found"
    assert activity.dead_letter_reason("") == "unknown"

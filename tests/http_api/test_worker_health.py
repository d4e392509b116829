"""The rq worker answers its probes on METRICS_PORT, as every process does (k8s, compose)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from redis import Redis as SyncRedis

from codex_broker.libs.keys import Keys
from tests.helpers import free_port
from tests.http_api.jobs_stack import Stack, running_stack, start_process, stop_process, wait


def restart_worker_with_metrics(stack: Stack, **extra: str) -> str:
    if stack.worker is not None:
        stop_process(stack.worker, sig=signal.SIGKILL)
    port = free_port()
    env = {**stack.env, "METRICS_PORT": str(port), **extra}
    stack.worker = start_process("codex_broker.http_api.worker", env, stack.logs / "worker-metrics.log")
    base = f"http://127.0.0.1:{port}"
    wait(lambda: _answers(f"{base}/healthz"), "the worker's /healthz")
    return base


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_worker_serves_health_readiness_and_metrics(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    with running_stack(sync_redis, keys, key_prefix, redis_url, tmp_path) as stack:
        base = restart_worker_with_metrics(stack)
        health = httpx.get(f"{base}/healthz").json()
        assert health["ok"] is True and health["service"] == "http-api-worker"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"redis": "ok", "jobs_sandbox": "ok"}
        metrics = httpx.get(f"{base}/metrics").text
        for name in (
            "cb_worker_queue_depth",
            "cb_worker_jobs_running",
            "cb_worker_capacity",
            "cb_service_up",
        ):
            assert name in metrics, name
        assert httpx.get(f"{base}/nothing").status_code == 404


def test_a_worker_that_refuses_jobs_is_not_ready(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    with running_stack(sync_redis, keys, key_prefix, redis_url, tmp_path) as stack:
        base = restart_worker_with_metrics(stack, CODEX_BIN=str(tmp_path / "no-codex-here"))
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["jobs_sandbox"].startswith("fail: ")

"""`codex-broker up` end to end: five services + embedded Redis up, visible, and all gone after SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.harness import ALL_SERVICES, BrokerProcess, _alive, descendants

# loopback never through a proxy (an earlier test's HTTP_PROXY may live on in urlopen's opener)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _metrics_once(port: int) -> bool:
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.status == 200 and b"cb_service_up" in response.read()
    except (urllib.error.URLError, OSError):
        return False


def _metrics_ok(port: int, within_s: float = 30.0) -> bool:
    """A service heartbeats as soon as its frame starts, a moment before its HTTP server
    listens (and longer on a loaded machine): ask until it answers or `within_s` is over."""
    deadline = time.monotonic() + within_s
    while not _metrics_once(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.e2e
def test_up_runs_everything_and_leaves_nothing_behind(tmp_path: Path) -> None:
    broker = BrokerProcess(data_root=tmp_path / "data", redis_url=None, stop_grace_s=20)
    with broker:
        report = broker.status_json()
        assert report["redis"]["source"].startswith("embedded Redis")
        live = sorted(s["service"] for s in report["services"] if s["service"] in ALL_SERVICES)
        assert live == sorted(ALL_SERVICES)  # once each (the rq worker may heartbeat too)
        assert all(s["age_s"] < 30 for s in report["services"])

        started = broker.started()
        assert set(started) >= {f"{s}-1" for s in ALL_SERVICES} | {"redis"}  # + worker-1 when it exists
        redis_pid = started["redis"][0]
        assert (tmp_path / "data" / "redis").is_dir()
        for service in ALL_SERVICES:
            port = broker.metrics_port(f"{service}-1")
            # the http-api may serve /metrics on its API port instead
            assert _metrics_ok(port) or (service == "http-api" and _metrics_ok(broker.http_api_port)), service

        children = descendants(broker.pid)
        assert redis_pid in children
        assert {broker.pid_of(s) for s in ALL_SERVICES} <= children
        up_pid = broker.pid
        broker.stop()  # SIGTERM to `up`; raises if any child, grandchild or redis-server is left
    assert not _alive(up_pid)
    assert not any(_alive(pid) for pid in children)
    assert not (tmp_path / "data" / "redis" / "embedded.json").exists()
    log = broker.log_text()
    assert "SIGTERM: stopping every child" in log
    assert "redis stopped" in log and "all children stopped" in log


@pytest.mark.e2e
async def test_up_restarts_a_dead_child(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    replicas = {"orchestrator": 1, "ingress-slack": 0, "ingress-feishu": 0, "codex-runner": 0, "http-api": 0}
    async with BrokerProcess(
        data_root=tmp_path / "data",
        redis_url=redis_url,
        key_prefix=key_prefix,
        services=("orchestrator",),
        replicas=replicas,
        worker=False,
    ) as broker:
        old = broker.kill_service("orchestrator", signal.SIGKILL)
        new = await asyncio.to_thread(broker.wait_restarted, "orchestrator-1", old, timeout_s=60)
        assert new != old
        assert "orchestrator-1 died unexpectedly (exit code -9)" in broker.log_text()
        assert broker.log_lines("orchestrator-1")  # its own output, prefix stripped

"""The worker's readiness verdict (pure)."""

from __future__ import annotations

from codex_broker.http_api.worker_health import readiness


def test_ready_only_with_redis_and_a_sandbox_or_an_explicit_opt_out() -> None:
    assert readiness(None, "sandboxed", "").ok
    assert readiness(None, "unsandboxed", "no userns").ok  # the operator chose it: degraded
    refused = readiness(None, "refused", "bwrap: No permissions to create new namespace")
    assert not refused.ok and refused.checks["jobs_sandbox"].startswith("fail: bwrap")
    down = readiness("ConnectionError", "sandboxed", "")
    assert not down.ok and down.checks["redis"] == "fail: ConnectionError"

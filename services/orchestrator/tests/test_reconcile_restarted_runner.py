"""A runner restarted under the same instance id heartbeats again, but its runs died with the old
process: the reconcile verdict tells the two processes apart by the boot id (regression found by
tests/replicas and tests/chaos, where `codex-broker up` restarts a SIGKILLed runner at once)."""

from __future__ import annotations

from typing import Any

from codex_broker.libs.records import RunRecord
from codex_broker.orchestrator import reconcile

RUNNING = {"session_key": "s", "created_at_ms": "1000", "status": "running", "runner_id": "r"}


def judge(run: dict[str, str], **facts: Any) -> reconcile.Verdict:
    """The pure verdict on a run hash as Redis holds it."""
    return reconcile.judge(RunRecord.from_hash(run), **facts)


def verdict(run: dict[str, str], boot: str | None) -> str:
    return judge(run, runner_seen_at=99, now_s=100, claim_timeout_s=60, dead_after_s=8, runner_boot=boot)


def test_same_process_keeps_the_run() -> None:
    assert verdict({**RUNNING, "runner_boot": "b1"}, "b1") == "keep"


def test_restarted_process_under_the_same_id_lost_the_run() -> None:
    assert verdict({**RUNNING, "runner_boot": "b1"}, "b2") == "runner_gone"


def test_runs_or_heartbeats_without_boot_id_fall_back_to_the_heartbeat_age() -> None:
    assert verdict(RUNNING, "b2") == "keep"
    assert verdict({**RUNNING, "runner_boot": "b1"}, None) == "keep"


def test_silence_during_a_redis_outage_is_not_a_runner_gone() -> None:
    running = {"session_key": "s", "runner_id": "r1", "created_at_ms": "0"}
    # Redis came back at 95: the runner's last beat (80) predates the outage's end
    assert (
        judge(running, runner_seen_at=80, now_s=100, claim_timeout_s=60, dead_after_s=8, reachable_since_s=95)
        == "keep"
    )
    assert (
        judge(
            running, runner_seen_at=None, now_s=100, claim_timeout_s=60, dead_after_s=8, reachable_since_s=95
        )
        == "keep"
    )
    # a whole window after it, still silent: gone
    assert (
        judge(running, runner_seen_at=80, now_s=104, claim_timeout_s=60, dead_after_s=8, reachable_since_s=95)
        == "runner_gone"
    )
    # a restarted runner is proof, window or not
    restarted = {**running, "runner_boot": "old"}
    assert (
        judge(
            restarted,
            runner_seen_at=99,
            now_s=100,
            claim_timeout_s=60,
            dead_after_s=8,
            runner_boot="new",
            reachable_since_s=99,
        )
        == "runner_gone"
    )


def test_an_outage_restarts_the_claim_window() -> None:
    queued = {"session_key": "s", "created_at_ms": "0"}
    assert (
        judge(
            queued, runner_seen_at=None, now_s=100, claim_timeout_s=60, dead_after_s=8, reachable_since_s=50
        )
        == "keep"
    )
    assert (
        judge(
            queued, runner_seen_at=None, now_s=111, claim_timeout_s=60, dead_after_s=8, reachable_since_s=50
        )
        == "unclaimed"
    )

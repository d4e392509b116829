"""The pure disk-cleanup planner: ordering, target, protections and their lapse."""

from __future__ import annotations

from pathlib import Path

from codex_broker.orchestrator.housekeeping.planner import (
    PROTECTION_ACTIVE_RUN,
    PROTECTION_PENDING_INBOUND,
    PROTECTION_RUNNING_JOB,
    Candidate,
    Policy,
    Protection,
    plan_cleanup,
)

H = 3_600_000
NOW = 1_000 * H
POLICY = Policy(
    min_free_bytes=100,
    target_free_bytes=1000,
    old_log_ms=24 * H,
    inactive_session_ms=24 * H,
    protection_ms=48 * H,
)


def log(name: str, size: int, age_h: float) -> Candidate:
    return Candidate("log", (Path(f"/d/logs/{name}"),), size, int(NOW - age_h * H))


def session(key: str, size: int, age_h: float, *protections: Protection) -> Candidate:
    return Candidate("session", (Path(f"/d/sessions/{key}"),), size, int(NOW - age_h * H), key, protections)


def names(decisions: tuple) -> list[str]:
    return [d.candidate.path.name for d in decisions]


def test_nothing_planned_above_the_minimum() -> None:
    plan = plan_cleanup(100, [log("a", 10_000, 100)], POLICY, NOW)
    assert not plan.needed and plan.deletions == ()


def test_old_logs_first_then_inactive_sessions_oldest_first_until_target() -> None:
    candidates = [
        session("s-new", 300, 30),
        session("s-old", 300, 90),
        log("l-new", 100, 30),
        log("l-old", 100, 200),
        session("s-mid", 300, 60),
        session("s-recent", 10_000, 2),  # active within the day: never a candidate
        log("l-current", 10_000, 1),  # this hour's log: never
    ]
    plan = plan_cleanup(50, candidates, POLICY, NOW)
    assert plan.needed
    # 50 + 100 + 100 + 300 + 300 = 850 < 1000 → one more session: 1150
    assert names(plan.deletions) == ["l-old", "l-new", "s-old", "s-mid", "s-new"]
    assert plan.reaches_target and plan.expected_free_bytes == 1150
    assert "log file last written 200.0h ago" in plan.deletions[0].reason
    assert "session inactive 90.0h" in plan.deletions[2].reason


def test_stops_as_soon_as_the_target_is_reached() -> None:
    plan = plan_cleanup(50, [log("l1", 2000, 30), session("s1", 300, 90)], POLICY, NOW)
    assert names(plan.deletions) == ["l1"]


def test_protections_keep_a_session_until_they_lapse() -> None:
    candidates = [
        session("run", 500, 30, Protection(PROTECTION_ACTIVE_RUN, NOW - 30 * H, "r1")),
        session("queued", 500, 30, Protection(PROTECTION_PENDING_INBOUND, NOW - 30 * H)),
        session("job", 500, 30, Protection(PROTECTION_RUNNING_JOB, NOW - 5 * H, "j1")),
        session("stuck", 500, 100, Protection(PROTECTION_ACTIVE_RUN, NOW - 100 * H, "r2")),
    ]
    plan = plan_cleanup(0, candidates, POLICY, NOW)
    assert names(plan.deletions) == ["stuck"]
    reason = plan.deletions[0].reason
    assert "protection lapsed" in reason and PROTECTION_ACTIVE_RUN in reason
    assert sorted(names(plan.kept)) == ["job", "queued", "run"]
    assert all(d.reason.startswith("protected (") for d in plan.kept)
    assert not plan.reaches_target and plan.notes


def test_orphan_session_dirs_are_labelled() -> None:
    orphan = Candidate("session", (Path("/d/sessions/x"),), 5000, NOW - 50 * H)
    plan = plan_cleanup(0, [orphan], POLICY, NOW)
    assert plan.deletions[0].reason.startswith("orphan session directory inactive")

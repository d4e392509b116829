"""stream_admission (pure): each InboundEvent kind only from its own stream family."""

from __future__ import annotations

from codex_broker.libs.contracts import Actor, InboundEvent, JobCallback
from codex_broker.orchestrator.stream_admission import ROLLOUT_WINDOW_MS, Admission, admit, entry_ms

SINCE = 1_800_000_000_000  # the job-callback streams' start (ms)


def _event(kind: str, actor: str = "U1", job_id: str | None = None) -> InboundEvent:
    return InboundEvent(
        event_id="e1",
        platform="slack",
        conversation_id="C1",
        root_message_id="1.1",
        kind=kind,  # type: ignore[arg-type]
        actor=Actor(id=actor, is_bot=job_id is not None),
        job=JobCallback(job_id=job_id, status="complete") if job_id else None,
    )


def _entry(ms: int) -> str:
    return f"{ms}-0"


def test_each_family_takes_its_own_kinds() -> None:
    report = _event("job_callback", "job:j1", "j1")
    assert admit("job_callbacks", report, _entry(SINCE + 10 * ROLLOUT_WINDOW_MS), SINCE) == Admission(True)
    for kind in ("message", "action"):
        assert admit("inbound", _event(kind), _entry(SINCE + 10 * ROLLOUT_WINDOW_MS), SINCE) == Admission(
            True
        )
        refused = admit("job_callbacks", _event(kind), _entry(SINCE), SINCE)
        assert refused == Admission(False, reason=f"a {kind} event on a job-callback stream")


def test_a_job_callback_on_inbound_only_from_the_previous_release_within_the_rollout_window() -> None:
    report = _event("job_callback", "job:j1", "j1")
    assert admit("inbound", report, _entry(SINCE - 5), SINCE) == Admission(True, legacy=True)
    assert admit("inbound", report, _entry(SINCE + ROLLOUT_WINDOW_MS - 1), SINCE).legacy
    late = admit("inbound", report, _entry(SINCE + ROLLOUT_WINDOW_MS), SINCE)
    assert late == Admission(False, reason="a job_callback event on a platform inbound stream")
    for stray in (_event("job_callback", "U1", "j1"), _event("job_callback", "job:j2", "j1")):
        assert not admit("inbound", stray, _entry(SINCE - 5), SINCE).accepted  # not its own job
    wake = _event("job_callback", "workspace", "delegation:d1")  # a previous-release orchestrator's
    assert admit("inbound", wake, _entry(SINCE - 5), SINCE).legacy
    assert not admit("inbound", wake, _entry(SINCE + ROLLOUT_WINDOW_MS), SINCE).accepted
    assert not admit("inbound", _event("job_callback", "workspace", "j1"), _entry(SINCE - 5), SINCE).accepted


def test_entry_ms_is_the_time_part_of_the_id() -> None:
    assert entry_ms("1700000000123-7") == 1_700_000_000_123

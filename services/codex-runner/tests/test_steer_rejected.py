"""The report of a steer no turn took: what the orchestrator needs to put the message back."""

from __future__ import annotations

from codex_broker.codex_runner.turn import steer_rejected
from codex_broker.libs.contracts import RunControl, RunEvent, RunInput, decode, encode


def _steer() -> RunControl:
    return RunControl(
        control_id="steer:slack:C1:101.5",
        run_id="run-1",
        session_key="slack:C1:100.1",
        kind="steer",
        input=[RunInput(type="text", text="use pathlib")],
    )


def test_names_the_control_the_run_and_the_session() -> None:
    event = steer_rejected(_steer(), runner_id="runner-a", reason="the turn already ended (completed)")
    assert event.kind == "steer_rejected"
    assert event.control_id == "steer:slack:C1:101.5"
    assert (event.run_id, event.session_key, event.runner_id) == ("run-1", "slack:C1:100.1", "runner-a")
    assert event.text == "the turn already ended (completed)"


def test_stands_outside_the_run_sequence_and_ends_nothing() -> None:
    event = steer_rejected(_steer(), runner_id="runner-a", reason="x")
    assert event.seq == 0
    assert not event.is_terminal


def test_round_trips_through_the_stream_and_bounds_the_reason() -> None:
    event = steer_rejected(_steer(), runner_id="runner-a", reason="turn/steer failed: " + "x" * 5000)
    back = decode(RunEvent, encode(event))
    assert back == event
    assert len(back.text or "") == 1000


def test_other_events_carry_no_control_id_on_the_wire() -> None:
    event = RunEvent(run_id="run-1", session_key="slack:C1:100.1", seq=3, kind="completed", text="done")
    assert "control_id" not in encode(event)  # older consumers still decode every other event

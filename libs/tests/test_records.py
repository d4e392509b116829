"""Typed hash records: decoding what Redis returns, encoding, and the change between two."""

from __future__ import annotations

import pytest

from codex_broker.libs.records import RunRecord, SessionRecord, TurnState, changes


def test_a_turn_state_round_trips_through_its_hash() -> None:
    turn = TurnState(state="running", active_run_id="r1", turn_active=True, run_started_ms=5)
    stored = turn.to_hash()
    assert stored == {"state": "running", "active_run_id": "r1", "turn_active": "1", "run_started_ms": "5"}
    raw = {k.encode(): v.encode() for k, v in stored.items()}  # as redis-py returns it
    assert TurnState.from_hash(raw) == turn
    assert TurnState.from_hash(None) == TurnState() and TurnState().phase == "idle"


def test_an_unknown_phase_reads_as_idle_but_is_kept() -> None:
    turn = TurnState.from_hash({"state": "paused"})
    assert turn.phase == "idle" and turn.state == "paused"


def test_changes_write_what_changed_and_delete_what_went() -> None:
    running = TurnState(state="running", active_run_id="r1", turn_active=True, last_final_action="final:r0")
    idle = running.replace(state="idle", active_run_id="", turn_active=False)
    assert changes(running, idle) == ({"state": "idle"}, ["active_run_id", "turn_active"])
    assert changes(idle, idle) == ({}, [])


def test_fields_of_other_writers_are_never_deleted() -> None:
    """A record read from a hash with fields it does not model leaves them alone."""
    turn = TurnState.from_hash({"state": "running", "someone_elses": "x"})
    assert changes(turn, turn.replace(state="idle")) == ({"state": "idle"}, [])


def test_a_malformed_number_reads_as_absent() -> None:
    assert SessionRecord.from_hash({"created_at_ms": "soon", "epoch": "x"}).created_at_ms is None
    assert SessionRecord.from_hash({"epoch": "x"}).epoch == 0


def test_a_new_session_has_its_counters_from_the_start() -> None:
    stored = SessionRecord(platform="slack", workspace="/w", created_at_ms=1).to_hash()
    assert stored["epoch"] == "0" and stored["total_tokens"] == "0"
    assert "is_direct" not in stored and "thread_id" not in stored
    assert SessionRecord.from_hash(SessionRecord(is_direct=True).to_hash()).is_direct


def test_a_run_has_handled_no_event_until_it_says_so() -> None:
    assert RunRecord().to_hash()["last_seq"] == "-1"
    assert RunRecord.from_hash({}).last_seq == -1
    assert RunRecord.from_hash({"last_seq": "7", "cancel_requested": "1"}).cancel_requested


def test_the_http_apis_writes_are_the_records_fields() -> None:
    report = TurnState.codex_report("blocked", "needs a token", run_id="r1", at_ms=9)
    turn = TurnState.from_hash({**report, **TurnState.final_posted("r1")})
    assert (turn.codex_state, turn.codex_state_run, turn.codex_state_at_ms) == ("blocked", "r1", 9)
    assert turn.codex_final_posted_run == "r1"


def test_a_partial_write_names_only_fields_the_record_has() -> None:
    assert RunRecord.encode_fields(status="completed", finished_at_ms=3, thread_id=None) == {
        "status": "completed",
        "finished_at_ms": "3",
    }
    with pytest.raises(KeyError):
        RunRecord.encode_fields(finshed_at_ms=3)  # a typo is caught, not written

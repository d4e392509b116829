from __future__ import annotations

import pytest

from codex_broker.orchestrator.decide import SessionFacts, admitted, after_run, on_message, on_start_tick


def facts(phase: str = "idle", queue_len: int = 0, turn_active: bool = False) -> SessionFacts:
    return SessionFacts(phase=phase, queue_len=queue_len, turn_active=turn_active)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "during", "debounce", "expected"),
    [
        (facts("idle"), "steer", 300, "debounce"),
        (facts("idle"), "steer", 0, "start"),
        (facts("debouncing", 3), "steer", 300, "debounce"),
        (facts("running", 0, turn_active=True), "steer", 300, "steer"),
        (facts("running", 0, turn_active=False), "steer", 300, "queue"),  # not steerable yet
        (facts("running", 0, turn_active=True), "queue", 300, "queue"),
        (facts("running", 20, turn_active=False), "queue", 300, "busy"),
        (facts("idle", 20), "steer", 300, "busy"),
    ],
)
def test_on_message(state: SessionFacts, during: str, debounce: int, expected: str) -> None:
    assert on_message(state, during_run=during, queue_limit=20, debounce_ms=debounce) == expected  # type: ignore[arg-type]


def test_start_tick() -> None:
    assert on_start_tick(facts("debouncing", 2), due_ms=1000, now_ms=1000) == "start"
    assert on_start_tick(facts("debouncing", 2), due_ms=1500, now_ms=1000) == "wait"
    assert on_start_tick(facts("debouncing", 2), due_ms=None, now_ms=1000) == "start"  # woken by a free slot
    assert on_start_tick(facts("running", 2), due_ms=900, now_ms=1000) == "drop"
    assert on_start_tick(facts("debouncing", 0), due_ms=900, now_ms=1000) == "drop"


def test_after_run_flushes_queue() -> None:
    assert after_run(0, debounce_ms=300) == "idle"
    assert after_run(3, debounce_ms=300) == "debounce"
    assert after_run(3, debounce_ms=0) == "start"


def test_fair_admission() -> None:
    assert admitted(active=0, ahead=0, max_active=1)
    assert not admitted(active=1, ahead=0, max_active=1)
    assert not admitted(active=2, ahead=1, max_active=3)  # 1 slot left, the waiter ahead takes it
    assert admitted(active=1, ahead=1, max_active=3)
    assert admitted(active=1, ahead=0, max_active=3)
    assert admitted(active=99, ahead=99, max_active=0)  # unlimited

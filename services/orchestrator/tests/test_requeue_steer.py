"""Where a rejected steer's message goes, and its place in the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from codex_broker.orchestrator.run_events import insert_position, requeue_action

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("phase", "debounce", "expected"),
    [
        ("running", 0, "queue"),  # the running turn's end flushes the queue
        ("running", 300, "queue"),
        ("debouncing", 0, "queue"),  # a start is pending (or waiting for a run slot)
        ("debouncing", 300, "queue"),
        ("idle", 0, "start"),  # the turn it was meant for is over: a new one
        ("idle", 300, "debounce"),
    ],
)
def test_requeue_action(phase: str, debounce: int, expected: str) -> None:
    assert requeue_action(phase, debounce_ms=debounce) == expected  # type: ignore[arg-type]


def test_appended_after_earlier_messages() -> None:
    assert insert_position([], at(5)) is None
    assert insert_position([at(1), at(2)], at(5)) is None
    assert insert_position([at(5)], at(5)) is None  # same instant: the queued one stays first


def test_goes_before_the_first_message_that_came_after_it() -> None:
    assert insert_position([at(1), at(7), at(9)], at(5)) == 1
    assert insert_position([at(7), at(9)], at(5)) == 0

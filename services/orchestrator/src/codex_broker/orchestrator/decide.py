"""The per-session state machine as pure decisions: idle → debouncing → running (→ queued).

The handler reads the facts from Redis, asks these functions what to do, then performs it. One
session's work is serialized by the shard worker, so a decision is never raced by another
message of the same session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["idle", "debouncing", "running"]
DuringRun = Literal["steer", "queue"]

MessageAction = Literal["debounce", "start", "steer", "queue", "busy"]


@dataclass(frozen=True)
class SessionFacts:
    phase: Phase
    queue_len: int
    turn_active: bool  # the runner reported turn_started for the active run (steer possible)


def on_message(
    facts: SessionFacts, *, during_run: DuringRun, queue_limit: int, debounce_ms: int
) -> MessageAction:
    """A new message for the session."""
    if facts.phase == "running":
        if during_run == "steer" and facts.turn_active:
            return "steer"
        return "busy" if facts.queue_len >= queue_limit else "queue"
    if facts.queue_len >= queue_limit:
        return "busy"
    return "start" if debounce_ms <= 0 else "debounce"


TickAction = Literal["start", "wait", "drop"]


def on_start_tick(facts: SessionFacts, *, due_ms: float | None, now_ms: float) -> TickAction:
    """The debounce timer (or a freed run slot) says the session may start its next turn."""
    if facts.phase == "running":
        return "drop"  # a run is in flight; its end schedules the next turn
    if facts.queue_len == 0:
        return "drop"
    if due_ms is not None and due_ms > now_ms:
        return "wait"  # another message arrived and moved the quiet window on
    return "start"


AfterRun = Literal["idle", "debounce", "start"]


def after_run(queue_len: int, *, debounce_ms: int) -> AfterRun:
    """The active run ended: queued messages flush into the next turn as one input."""
    if queue_len == 0:
        return "idle"
    return "start" if debounce_ms <= 0 else "debounce"


def admitted(active: int, ahead: int, max_active: int) -> bool:
    """Fair FIFO admission (mirrors the Lua script): free slots must exceed the waiters ahead."""
    return max_active <= 0 or active + ahead < max_active

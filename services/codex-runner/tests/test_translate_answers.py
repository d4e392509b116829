"""Which agent messages of a turn are answers (docs/architecture.md, "Every answer shown")."""

from __future__ import annotations

from typing import Any

import pytest

from codex_broker.codex_runner.translate import Emit, TurnTranslator

THREAD = "thread-1"
TURN = "turn-1"


def _note(**params: Any) -> dict[str, Any]:
    return {"threadId": THREAD, "turnId": TURN, **params}


def _user(item_id: str, text: str) -> tuple[str, dict[str, Any]]:
    content = [{"type": "text", "text": text, "text_elements": []}]
    return "item/started", _note(item={"type": "userMessage", "id": item_id, "content": content})


def _agent(item_id: str, text: str, phase: str | None = None) -> tuple[str, dict[str, Any]]:
    item = {"type": "agentMessage", "id": item_id, "text": text, "phase": phase}
    return "item/completed", _note(item=item, completedAtMs=1)


def _command(item_id: str) -> tuple[str, dict[str, Any]]:
    item = {
        "type": "commandExecution",
        "id": item_id,
        "command": "ls",
        "cwd": "/w",
        "status": "inProgress",
        "commandActions": [],
    }
    return "item/started", _note(item=item, startedAtMs=1)


def _end(status: str = "completed") -> tuple[str, dict[str, Any]]:
    return "turn/completed", {"threadId": THREAD, "turn": {"id": TURN, "items": [], "status": status}}


def _answers(notes: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], Emit]:
    t = TurnTranslator(THREAD)
    emits = [e for method, params in notes for e in t.notification(method, params)]
    terminal = emits[-1]
    return [e.text or "" for e in emits if e.kind == "answer"], terminal


@pytest.mark.parametrize("phase", [None, "final_answer", "partial_answer"])
def test_an_answer_made_before_a_steer_is_an_answer(phase: str | None) -> None:
    answers, terminal = _answers(
        [
            _user("u1", "question one"),
            _agent("m1", "answer one", phase),
            _user("u2", "question two"),  # the steer Codex took into the turn
            _agent("m2", "answer two", phase),
            _end(),
        ]
    )
    assert answers == ["answer one"]
    assert terminal.kind == "completed" and terminal.text == "answer two"


def test_a_preamble_before_a_tool_call_is_not_an_answer() -> None:
    answers, terminal = _answers(
        [
            _user("u1", "fix it"),
            _agent("m1", "Let me look at the tests."),
            _command("c1"),
            _agent("m2", "Fixed."),
            _end(),
        ]
    )
    assert answers == [] and terminal.text == "Fixed."


def test_commentary_stays_in_the_live_view() -> None:
    answers, terminal = _answers(
        [
            _user("u1", "q"),
            _agent("m1", "checking…", "commentary"),
            _user("u2", "and also"),
            _agent("m2", "both done", "final_answer"),
            _end(),
        ]
    )
    assert answers == [] and terminal.text == "both done"


def test_every_marked_final_answer_is_posted_once_in_order() -> None:
    answers, terminal = _answers(
        [
            _user("u1", "q"),
            _agent("m1", "first", "final_answer"),
            _command("c1"),
            _agent("m2", "second", "final_answer"),
            _agent("m3", "third", "final_answer"),
            _end(),
        ]
    )
    assert answers == ["first", "second"] and terminal.text == "third"


def test_a_steer_cutting_a_message_short_posts_nothing_of_it() -> None:
    """Codex drops a message that was still streaming when the steer came (it never completes
    and is not in the thread's history): only complete messages can be answers."""
    t = TurnTranslator(THREAD)
    t.notification("item/agentMessage/delta", _note(itemId="m1", delta="first answ"))
    emits = [
        e for m, p in [_user("u2", "q2"), _agent("m2", "answer two"), _end()] for e in t.notification(m, p)
    ]
    assert [e.kind for e in emits] == ["completed"] and emits[0].text == "answer two"


def test_a_marked_answer_before_a_stop_is_still_posted() -> None:
    answers, terminal = _answers(
        [_user("u1", "q"), _agent("m1", "done here", "final_answer"), _end("interrupted")]
    )
    assert answers == ["done here"] and terminal.kind == "interrupted"


def test_a_turn_whose_last_answer_went_out_early_ends_without_repeating_it() -> None:
    answers, terminal = _answers(
        [_user("u1", "q"), _agent("m1", "the answer", "final_answer"), _command("c1"), _end()]
    )
    assert answers == ["the answer"] and terminal.text == ""

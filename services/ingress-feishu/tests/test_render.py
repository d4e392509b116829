"""Run cards and buttons: layout, Stop button, values the orchestrator understands."""

from __future__ import annotations

from codex_broker.ingress_feishu.render import (
    activity_markdown,
    answer_overflow,
    buttons_card,
    card_answer,
    decode_button_value,
    encode_button_value,
    progress_card,
)
from codex_broker.libs.contracts import Button, Coordinates, PlanStep, ProgressPayload, TaskItem

COORDS = Coordinates(platform="feishu", conversation_id="oc_g", root_message_id="om_root")


def snap(**kw: object) -> ProgressPayload:
    base: dict[str, object] = {"progress_id": "run-1", "run_id": "run-1", "seq": 1, "phase": "update"}
    base.update(kw)
    return ProgressPayload(**base)  # type: ignore[arg-type]


def test_streaming_card_has_answer_activity_and_stop() -> None:
    card = progress_card(
        snap(activity="Running tests"), COORDS, answer="Hello", streaming=True, show_stop=True
    )
    assert card["schema"] == "2.0" and card["config"]["streaming_mode"] is True
    answer, activity, stop = card["body"]["elements"]
    assert (answer["element_id"], answer["content"]) == ("answer", "Hello")
    assert activity["element_id"] == "activity" and "Running tests" in activity["content"]
    assert stop["element_id"] == "stop"
    assert stop["behaviors"][0]["value"] == {"cb": "stop", "v": "run-1", "root": "om_root", "conv": "oc_g"}


def test_final_card_has_no_stop_and_no_streaming() -> None:
    card = progress_card(
        snap(phase="finish", outcome="interrupted"), COORDS, answer="x", streaming=False, show_stop=False
    )
    assert "streaming_mode" not in card["config"]
    assert [e["element_id"] for e in card["body"]["elements"]] == ["answer", "activity"]
    assert card["body"]["elements"][1]["content"].startswith("⏹ Stopped")


def test_activity_lists_recent_tasks_and_plan() -> None:
    tasks = [TaskItem(id=str(i), title=f"cmd {i}", status="complete") for i in range(10)]
    plan = [PlanStep(step="read", status="completed"), PlanStep(step="fix", status="in_progress")]
    text = activity_markdown(snap(activity="Editing", tasks=tasks, plan=plan))
    lines = text.splitlines()
    assert lines[0] == "⏳ Editing" and lines[1] == "✅ cmd 4" and lines[-1] == "Plan 1/2: fix"


def test_card_answer_and_overflow_split_at_the_limit() -> None:
    long = "word " * 2000
    assert len(card_answer(long)) <= 4003 and card_answer(long).endswith("…")
    assert "".join(answer_overflow(long)).strip()
    assert card_answer("short") == "short" and answer_overflow("short") == []


def test_button_values_round_trip() -> None:
    value = encode_button_value("approve", "run-1:req-2", COORDS)
    decoded = decode_button_value(value)
    assert decoded is not None and (decoded.action, decoded.value, decoded.root_message_id) == (
        "approve",
        "run-1:req-2",
        "om_root",
    )
    assert decode_button_value({"cb": "rm -rf", "root": "x"}) is None


def test_buttons_card() -> None:
    card = buttons_card("Allow?", [Button(action="deny", label="Deny", value="r:q", style="danger")], COORDS)
    markdown, button = card["body"]["elements"]
    assert markdown["content"] == "Allow?" and button["type"] == "danger"

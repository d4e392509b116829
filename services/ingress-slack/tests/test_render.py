"""Block Kit bodies, progress views and streaming deltas, without a network."""

from __future__ import annotations

from codex_broker.ingress_slack.errors import classify, metric_error
from codex_broker.ingress_slack.mrkdwn import UPDATE_LIMIT
from codex_broker.ingress_slack.render import (
    SECTION_LIMIT,
    StreamState,
    message_blocks,
    plan_title,
    post_chunks,
    progress_blocks,
    progress_text,
    stream_delta,
    text_pieces,
)
from codex_broker.libs.contracts import Button, PlanStep, ProgressPayload, TaskItem


def progress(**fields: object) -> ProgressPayload:
    base: dict[str, object] = {"progress_id": "run-1", "run_id": "run-1", "seq": 1, "phase": "update"}
    base.update(fields)
    return ProgressPayload.model_validate(base)


def test_buttons_render_as_our_action_ids() -> None:
    blocks = message_blocks(
        "Allow?",
        [
            Button(action="approve", label="Approve", value="r:q", style="primary"),
            Button(action="deny", label="Deny", value="r:q", style="danger"),
        ],
    )
    assert blocks is not None
    actions = blocks[-1]
    assert actions["type"] == "actions"
    assert [(e["action_id"], e["value"], e["style"]) for e in actions["elements"]] == [
        ("cb_approve", "r:q", "primary"),
        ("cb_deny", "r:q", "danger"),
    ]
    assert message_blocks("plain", []) is None


def test_post_chunks_convert_markdown_or_escape_text() -> None:
    assert post_chunks("**hi** <x>", "markdown") == ["*hi* &lt;x&gt;"]
    assert post_chunks("**hi** <x>", "text") == ["**hi** &lt;x&gt;"]


def test_progress_message_fits_chat_update_and_has_a_stop_button() -> None:
    tasks = [TaskItem(id=f"t{i}", title=f"pytest -k case_{i}", status="complete") for i in range(40)]
    snapshot = progress(answer_text="word " * 5000, tasks=tasks, activity="Running tests")
    text = progress_text(snapshot)
    assert len(text) <= UPDATE_LIMIT
    assert "Running tests" in text and "earlier steps" in text and text.rstrip().endswith("word")
    blocks = progress_blocks(snapshot, text)
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if b["type"] == "section")
    stop = blocks[-1]["elements"][0]
    assert (stop["action_id"], stop["value"]) == ("cb_stop", "run-1")


def test_finished_progress_shows_outcome_and_no_stop_button() -> None:
    snapshot = progress(phase="finish", outcome="interrupted")
    text = progress_text(snapshot)
    assert text.startswith(":octagonal_sign: Stopped")
    assert all(b["type"] != "actions" for b in progress_blocks(snapshot, text))


def test_stream_delta_appends_only_what_is_new() -> None:
    first = progress(
        answer_text="Looking",
        tasks=[TaskItem(id="c1", title="ls -la", status="in_progress")],
        plan=[PlanStep(step="read", status="in_progress"), PlanStep(step="fix")],
    )
    delta = stream_delta(first, StreamState())
    assert delta.markdown_text == "Looking"
    assert [c["type"] for c in delta.chunks] == ["plan_update", "task_update"]
    assert delta.chunks[0]["title"] == "Plan 0/2: read"
    second = progress(
        seq=2,
        answer_text="Looking at it",
        tasks=[
            TaskItem(id="c1", title="ls -la", status="complete", output="a\nb"),
            TaskItem(id="c2", title="cat x", status="in_progress"),
        ],
        plan=[PlanStep(step="read", status="in_progress"), PlanStep(step="fix")],
    )
    delta2 = stream_delta(second, delta.state)
    assert delta2.markdown_text == " at it"
    assert [(c["id"], c["status"]) for c in delta2.chunks] == [("c1", "complete"), ("c2", "in_progress")]
    assert delta2.chunks[0]["output"] == "a\nb"
    assert stream_delta(second, delta2.state).empty


def test_stream_delta_never_retracts() -> None:
    delta = stream_delta(progress(answer_text="short"), StreamState(streamed_len=10))
    assert delta.diverged and delta.markdown_text == ""


def test_plan_title_and_text_pieces() -> None:
    assert plan_title([]) == ""
    assert plan_title([PlanStep(step="a", status="completed"), PlanStep(step="b")]) == "Plan 1/2"
    assert text_pieces("x" * 25_000) == ["x" * 10_000, "x" * 10_000, "x" * 5_000]


def test_error_classification_and_bounded_labels() -> None:
    assert classify("ratelimited") == "ratelimited"
    assert classify("whatever", 429) == "ratelimited"
    assert classify("internal_error") == "transient"
    assert classify("http_error", 503) == "transient"
    assert classify("missing_scope") == "refused"
    assert classify("unknown_method") == "refused"
    assert classify("channel_not_found") == "permanent"
    assert metric_error("channel_not_found") == "channel_not_found"
    assert metric_error("some_new_error_nobody_knows") == "other"

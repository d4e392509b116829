from __future__ import annotations

from codex_broker.libs.contracts import RESTART_HANDOVER, ApprovalRequest, ItemInfo, PlanStep, RunEvent
from codex_broker.orchestrator import render


def ev(kind: str, seq: int = 1, **fields: object) -> RunEvent:
    return RunEvent(run_id="r1", session_key="slack:C:1", seq=seq, kind=kind, **fields)  # type: ignore[arg-type]


def test_describe_items() -> None:
    assert (
        render.describe_item(ItemInfo(id="1", kind="command", command="pytest -q")) == "running `pytest -q`"
    )
    assert (
        render.describe_item(ItemInfo(id="2", kind="file_change", paths=["a", "b", "c"])) == "editing 3 files"
    )
    assert (
        render.describe_item(ItemInfo(id="3", kind="file_change", paths=["src/x.py"])) == "editing `src/x.py`"
    )
    assert render.describe_item(ItemInfo(id="4", kind="web_search", summary="redis streams")).startswith(
        "searching"
    )
    long = render.describe_item(ItemInfo(id="5", kind="command", command="x" * 500))
    assert len(long) < 100


def test_fold_events_into_view() -> None:
    view = render.ProgressView()
    view, change = render.apply_event(
        view, ev("item_started", item=ItemInfo(id="c1", kind="command", command="ls"))
    )
    assert change == "structure" and view.activity == "running `ls`"
    assert [t.status for t in view.tasks] == ["in_progress"]
    done = ItemInfo(
        id="c1", kind="command", command="ls", exit_code=2, status="completed", output_tail="boom"
    )
    view, _ = render.apply_event(view, ev("item_completed", item=done))
    assert [(t.status, t.output) for t in view.tasks] == [("error", "boom")]
    view, change = render.apply_event(view, ev("text_delta", text="Hel"))
    view, change = render.apply_event(view, ev("text_delta", text="lo"))
    assert change == "text" and view.answer == "Hello"
    plan = ItemInfo(id="p", kind="plan", plan=[PlanStep(step="a", status="completed"), PlanStep(step="b")])
    view, change = render.apply_event(view, ev("item_started", item=plan))
    assert change == "structure" and [p.step for p in view.plan] == ["a", "b"]
    approval = ApprovalRequest(request_id="q", kind="command", summary="rm -rf build")
    view, change = render.apply_event(view, ev("approval_requested", approval=approval))
    assert view.activity == "waiting for approval"
    _, change = render.apply_event(view, ev("token_usage"))
    assert change == "none"


def test_coalescing_rate() -> None:
    view = render.ProgressView(last_emit_ms=1000)
    assert render.should_emit(view, "structure", now_ms=1001, interval_ms=700)
    assert not render.should_emit(view, "text", now_ms=1500, interval_ms=700)
    assert render.should_emit(view, "text", now_ms=1700, interval_ms=700)
    assert not render.should_emit(view, "none", now_ms=5000, interval_ms=700)
    assert render.should_emit(view.model_copy(update={"dirty": True}), "none", now_ms=5000, interval_ms=700)


def test_snapshots_and_seq() -> None:
    view = render.ProgressView()
    start = render.snapshot(view, "r1", phase="start")
    assert start.seq == 0 and start.show_stop and start.progress_id == "r1"
    view = render.emitted(view, 10)
    finish = render.snapshot(view, "r1", phase="finish", outcome="completed", final_text="done")
    assert finish.seq == 1 and not finish.show_stop and finish.final_text == "done"


def test_final_texts() -> None:
    assert render.final_text_for("completed", "Answer", final_posted_by_codex=False) == "Answer"
    assert render.final_text_for("completed", "Answer", final_posted_by_codex=True) is None
    assert render.final_text_for("completed", "", final_posted_by_codex=False)
    assert render.final_text_for("interrupted", None, final_posted_by_codex=False) == "Stopped."
    handed_over = render.final_text_for(
        "interrupted", f"{RESTART_HANDOVER}: the broker is restarting", final_posted_by_codex=False
    )
    assert handed_over == render.RESTART_NOTICE and "send again to continue" in handed_over
    failed = render.final_text_for("failed", "model error 500", final_posted_by_codex=False)
    assert failed is not None and "model error 500" in failed
    assert "fresh" in (
        render.final_text_for("failed", "thread_not_found: x", final_posted_by_codex=False) or ""
    )

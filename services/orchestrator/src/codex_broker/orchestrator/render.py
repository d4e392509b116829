"""Run events → what the thread shows (pure).

A run's live view is a `ProgressView` folded from its RunEvents. Each emitted snapshot gets the
next `seq`, so the ingress can drop stale or repeated ones; action ids are derived from the run id
and that seq, so a redelivered run event never posts twice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from codex_broker.libs.contracts import (
    RESTART_HANDOVER,
    Coordinates,
    ItemInfo,
    OutboundAction,
    OutboundPayload,
    PlanStep,
    ProgressPayload,
    RunEvent,
    StatusPayload,
    TaskItem,
)

MAX_ANSWER_CHARS = 20_000
MAX_TASKS = 30
MAX_TASK_OUTPUT = 500
STARTING_ACTIVITY = "starting Codex"
TASK_KINDS = frozenset({"command", "file_change", "web_search", "mcp_tool"})

Outcome = Literal["completed", "interrupted", "failed"]
# a runner drained past its grace (a rollout) handed the turn over: never a silent "Stopped."
RESTART_NOTICE = "⏸ The broker is restarting; send again to continue."


class ProgressView(BaseModel):
    """Everything needed to render the next snapshot; stored with the run between events."""

    seq: int = 0
    answer: str = ""
    activity: str = STARTING_ACTIVITY
    tasks: list[TaskItem] = Field(default_factory=list)
    plan: list[PlanStep] = Field(default_factory=list)
    dirty: bool = False
    last_emit_ms: int = 0


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_item(item: ItemInfo) -> str:
    """What Codex is doing, as a few words for the progress line."""
    if item.kind == "command":
        return f"running `{shorten(item.command or item.summary or 'a command', 80)}`"
    if item.kind == "file_change":
        if len(item.paths) == 1:
            return f"editing `{shorten(item.paths[0], 80)}`"
        return f"editing {len(item.paths)} files" if item.paths else "editing files"
    if item.kind == "web_search":
        return f"searching the web for “{shorten(item.summary, 60)}”" if item.summary else "searching the web"
    if item.kind == "plan":
        return "updating the plan"
    if item.kind == "mcp_tool":
        return f"calling `{shorten(item.summary, 60)}`" if item.summary else "calling a tool"
    if item.kind == "reasoning":
        return "thinking"
    return shorten(item.summary, 80) or "working"


def task_of(item: ItemInfo) -> TaskItem:
    if item.kind == "command":
        title = f"Run `{shorten(item.command or item.summary, 100)}`"
    elif item.kind == "file_change":
        title = "Edit " + (", ".join(f"`{p}`" for p in item.paths[:5]) or "files")
        if len(item.paths) > 5:
            title += f" and {len(item.paths) - 5} more"
    elif item.kind == "web_search":
        title = f"Search the web: {shorten(item.summary, 100)}"
    else:
        title = f"Tool: {shorten(item.summary, 100)}"
    failed = item.status in ("failed", "declined") or (item.exit_code not in (None, 0))
    status: Literal["in_progress", "complete", "error"] = (
        "error" if failed else "in_progress" if item.status == "in_progress" else "complete"
    )
    output = (item.output_tail or "")[-MAX_TASK_OUTPUT:]
    return TaskItem(id=item.id, title=title, status=status, output=output)


def _upsert_task(tasks: list[TaskItem], task: TaskItem) -> list[TaskItem]:
    kept = [t for t in tasks if t.id != task.id]
    index = next((i for i, t in enumerate(tasks) if t.id == task.id), len(kept))
    kept.insert(index, task)
    return kept[-MAX_TASKS:]


Change = Literal["none", "text", "structure"]


def apply_event(view: ProgressView, event: RunEvent) -> tuple[ProgressView, Change]:
    """Fold one non-terminal run event into the view; say how much the view changed."""
    if event.kind == "text_delta" and event.text:
        room = MAX_ANSWER_CHARS - len(view.answer)
        if room <= 0:
            return view, "none"
        return view.model_copy(
            update={"answer": view.answer + event.text[:room], "activity": "writing"}
        ), "text"
    if event.kind in ("item_started", "item_completed") and event.item is not None:
        item = event.item
        if item.kind == "plan" and item.plan:
            return view.model_copy(
                update={"plan": list(item.plan), "activity": "updating the plan"}
            ), "structure"
        update: dict[str, object] = {}
        if item.kind in TASK_KINDS:
            update["tasks"] = _upsert_task(view.tasks, task_of(item))
        if event.kind == "item_started":
            update["activity"] = describe_item(item)
        elif item.kind in TASK_KINDS:
            update["activity"] = "thinking"
        if not update:
            return view, "none"
        return view.model_copy(update=update), "structure"
    if event.kind == "approval_requested" and event.approval is not None:
        return view.model_copy(update={"activity": "waiting for approval"}), "structure"
    if event.kind == "approval_resolved":
        return view.model_copy(update={"activity": "thinking"}), "structure"
    return view, "none"


def should_emit(view: ProgressView, change: Change, *, now_ms: int, interval_ms: int) -> bool:
    """Structure changes show at once; answer text at most once per interval (the rest coalesces)."""
    if change == "structure":
        return True
    if change == "text" or (change == "none" and view.dirty):
        return now_ms - view.last_emit_ms >= interval_ms
    return False


def snapshot(
    view: ProgressView,
    run_id: str,
    *,
    phase: Literal["start", "update", "finish"],
    outcome: Outcome | None = None,
    final_text: str | None = None,
) -> ProgressPayload:
    return ProgressPayload(
        progress_id=run_id,
        run_id=run_id,
        seq=view.seq,
        phase=phase,
        answer_text=view.answer,
        activity=view.activity,
        tasks=list(view.tasks),
        plan=list(view.plan),
        show_stop=phase != "finish",
        outcome=outcome,
        final_text=final_text,
    )


def emitted(view: ProgressView, now_ms: int) -> ProgressView:
    """The view after one more snapshot went out."""
    return view.model_copy(update={"seq": view.seq + 1, "dirty": False, "last_emit_ms": now_ms})


def failure_text(reason: str | None) -> str:
    reason = (reason or "").strip()
    if reason.startswith("thread_not_found"):
        return (
            "I could not resume this thread's earlier Codex session, so your next message starts a fresh one."
        )
    if not reason:
        return "Sorry, this turn failed for an unknown reason."
    return f"Sorry, this turn failed: {shorten(reason, 500)}"


def final_text_for(
    kind: Outcome, text: str | None, *, final_posted_by_codex: bool, answers_posted: bool = False
) -> str | None:
    """What the thread gets as the answer when a run ends (None: nothing new to post).

    `answers_posted`: earlier answers of the run are in the thread already, so an empty last
    one is no news."""
    if kind == "completed":
        if final_posted_by_codex:
            return None
        if (text or "").strip():
            return text
        return None if answers_posted else "Done (Codex returned no written answer)."
    if kind == "interrupted":
        return RESTART_NOTICE if (text or "").startswith(RESTART_HANDOVER) else "Stopped."
    return failure_text(text)


def outbound(
    coords: Coordinates,
    session_key: str,
    payload: OutboundPayload,
    action_id: str,
    *,
    reply_to: str | None = None,
) -> OutboundAction:
    return OutboundAction(
        action_id=action_id,
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=coords.root_message_id,
        session_key=session_key,
        payload=payload,
        reply_to=reply_to,
    )


def status_payload(
    state: Literal["running", "completed", "failed", "interrupted"], message_id: str | None
) -> StatusPayload:
    text = {"running": "is working…", "completed": "", "failed": "", "interrupted": ""}[state]
    return StatusPayload(state=state, message_id=message_id or None, text=text)

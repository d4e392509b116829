"""Contract payloads → Slack message bodies and streaming chunks. Pure functions.

Limits that shape this module: a section block's text ≤ 3,000 chars, chat.update rejects
> 4,000 chars of text, a streaming markdown_text ≤ 12,000 chars per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codex_broker.ingress_slack.mrkdwn import (
    UPDATE_LIMIT,
    escape,
    split_message,
    to_mrkdwn,
    trim,
)
from codex_broker.ingress_slack.normalize import ACTION_PREFIX
from codex_broker.libs.contracts import (
    Button,
    Form,
    FormField,
    FormOption,
    PlanStep,
    ProgressPayload,
    TaskItem,
)

SECTION_LIMIT = 2900
STREAM_TEXT_LIMIT = 10_000
TASK_OUTPUT_LIMIT = 500
TASK_TITLE_LIMIT = 200
PROGRESS_TASKS_SHOWN = 8

TASK_ICONS = {"in_progress": ":hourglass_flowing_sand:", "complete": ":white_check_mark:", "error": ":x:"}
PLAN_ICONS = {
    "pending": ":white_circle:",
    "in_progress": ":arrow_forward:",
    "completed": ":white_check_mark:",
}
OUTCOME_LINES = {
    "completed": ":white_check_mark: Done",
    "interrupted": ":octagonal_sign: Stopped",
    "failed": ":x: Failed",
}
STATUS_REACTIONS = {
    "running": "eyes",
    "completed": "white_check_mark",
    "failed": "x",
    "interrupted": "octagonal_sign",
}


# ---- messages -----------------------------------------------------------------------------------


def button_element(button: Button) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{button.action}",
        "text": {"type": "plain_text", "text": button.label[:75], "emoji": True},
        "value": button.value[:2000],
    }
    if button.style != "default":
        element["style"] = button.style
    return element


def actions_block(buttons: Sequence[Button]) -> dict[str, Any]:
    return {"type": "actions", "elements": [button_element(b) for b in buttons[:25]]}


def section_blocks(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}}
        for piece in split_message(text, SECTION_LIMIT)
    ]


def message_blocks(text: str, buttons: Sequence[Button]) -> list[dict[str, Any]] | None:
    """Blocks only when there are buttons; plain text messages keep Slack's own rendering."""
    if not buttons:
        return None
    return [*section_blocks(text), actions_block(buttons)]


def post_chunks(text: str, fmt: str) -> list[str]:
    converted = to_mrkdwn(text) if fmt == "markdown" else escape(text)
    return split_message(converted) or [""]


def stop_button(run_id: str) -> Button:
    return Button(action="stop", label="Stop", value=run_id, style="danger")


# ---- fallback progress message ------------------------------------------------------------------


def progress_text(progress: ProgressPayload) -> str:
    """The whole live view as mrkdwn, trimmed so chat.update accepts it."""
    head: list[str] = []
    if progress.phase == "finish" and progress.outcome:
        head.append(OUTCOME_LINES[progress.outcome])
    else:
        head.append(":hourglass_flowing_sand: " + (escape(progress.activity) or "Working…"))
    if progress.plan:
        head.append("*Plan*")
        head.extend(f"{PLAN_ICONS[s.status]} {escape(s.step)}" for s in progress.plan[:12])
    tasks = progress.tasks[-PROGRESS_TASKS_SHOWN:]
    if len(progress.tasks) > len(tasks):
        head.append(f"_… {len(progress.tasks) - len(tasks)} earlier steps_")
    head.extend(f"{TASK_ICONS[t.status]} `{escape(_one_line(t.title, 120))}`" for t in tasks)
    top = trim("\n".join(head), UPDATE_LIMIT // 2)
    answer = to_mrkdwn(progress.answer_text) if progress.answer_text else ""
    if not answer:
        return top
    budget = UPDATE_LIMIT - len(top) - 2
    return f"{top}\n\n{trim(answer, budget, keep='tail')}"


def progress_blocks(progress: ProgressPayload, text: str) -> list[dict[str, Any]]:
    blocks = section_blocks(trim(text, SECTION_LIMIT, keep="head"))
    run_id = progress.run_id or progress.progress_id
    if progress.show_stop and progress.phase != "finish":
        blocks.append(actions_block([stop_button(run_id)]))
    return blocks


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---- native streaming ---------------------------------------------------------------------------


@dataclass
class StreamState:
    """What the stream already shows: appended answer length and each task's last rendering."""

    streamed_len: int = 0
    tasks: dict[str, str] = field(default_factory=dict)
    plan_title: str = ""


@dataclass(frozen=True)
class StreamDelta:
    markdown_text: str
    chunks: list[dict[str, Any]]
    state: StreamState
    diverged: bool = False  # the answer no longer extends what was streamed (cannot retract)

    @property
    def empty(self) -> bool:
        return not self.markdown_text and not self.chunks


def task_chunk(task: TaskItem) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "type": "task_update",
        "id": task.id[:100],
        "title": _one_line(task.title, TASK_TITLE_LIMIT) or "step",
        "status": task.status,
    }
    if task.output:
        chunk["output"] = trim(task.output, TASK_OUTPUT_LIMIT, keep="tail")
    return chunk


def plan_title(plan: Sequence[PlanStep]) -> str:
    if not plan:
        return ""
    done = sum(1 for s in plan if s.status == "completed")
    current = next((s.step for s in plan if s.status == "in_progress"), "")
    title = f"Plan {done}/{len(plan)}"
    return _one_line(f"{title}: {current}" if current else title, TASK_TITLE_LIMIT)


def _task_fingerprint(task: TaskItem) -> str:
    digest = hashlib.blake2b(task.output.encode(), digest_size=6).hexdigest()
    return f"{task.status}:{task.title}:{digest}"


def stream_delta(progress: ProgressPayload, state: StreamState, answer: str | None = None) -> StreamDelta:
    """What to append so the stream shows `progress`: new answer text, changed tasks, plan title."""
    answer = progress.answer_text if answer is None else answer
    new_state = StreamState(state.streamed_len, dict(state.tasks), state.plan_title)
    chunks: list[dict[str, Any]] = []
    title = plan_title(progress.plan)
    if title and title != state.plan_title:
        chunks.append({"type": "plan_update", "title": title})
        new_state.plan_title = title
    for task in progress.tasks:
        fingerprint = _task_fingerprint(task)
        if state.tasks.get(task.id) != fingerprint:
            chunks.append(task_chunk(task))
            new_state.tasks[task.id] = fingerprint
    diverged = len(answer) < state.streamed_len
    text = "" if diverged else answer[state.streamed_len :]
    new_state.streamed_len = max(state.streamed_len, len(answer))
    return StreamDelta(markdown_text=text, chunks=chunks, state=new_state, diverged=diverged)


def text_pieces(text: str, limit: int = STREAM_TEXT_LIMIT) -> list[str]:
    """markdown_text for the stream APIs, cut at their per-call limit (plain cut: raw Markdown)."""
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [""]


def stream_state_from(raw: Mapping[str, Any]) -> StreamState:
    tasks = raw.get("tasks") or {}
    return StreamState(
        streamed_len=int(raw.get("streamed_len") or 0),
        tasks={str(k): str(v) for k, v in tasks.items()},
        plan_title=str(raw.get("plan_title") or ""),
    )


def stream_state_dict(state: StreamState) -> dict[str, Any]:
    return {"streamed_len": state.streamed_len, "tasks": state.tasks, "plan_title": state.plan_title}


# ---- forms (a modal for views.open) ---------------------------------------------------------------

CHECKBOX_OPTIONS_MAX = 10  # Slack's cap on one checkboxes element
CHECKED = "on"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _one_line(text, limit) or " "}


def _option(option: FormOption) -> dict[str, Any]:
    rendered: dict[str, Any] = {"text": _plain(option.label, 75), "value": option.value}
    if option.description:
        rendered["description"] = _plain(option.description, 75)
    return rendered


def _input(block_id: str, label: str, element: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": _plain(label, 2000),
        "element": element,
    }


def _field_blocks(spec: FormField) -> list[dict[str, Any]]:
    """A multi-select is split over checkboxes of ≤ 10 options named `<name>_<n>`; a checkbox is
    one option (value `on`); a text field a plain text input."""
    if spec.kind == "multi_select":
        blocks = []
        for index in range(0, len(spec.options), CHECKBOX_OPTIONS_MAX):
            chunk = spec.options[index : index + CHECKBOX_OPTIONS_MAX]
            action_id = f"{spec.name}_{index // CHECKBOX_OPTIONS_MAX}"
            element: dict[str, Any] = {
                "type": "checkboxes",
                "action_id": action_id,
                "options": [_option(o) for o in chunk],
            }
            initial = [_option(o) for o in chunk if o.value in spec.selected]
            if initial:  # Slack rejects an empty initial_options
                element["initial_options"] = initial
            blocks.append(_input(action_id, spec.label if index == 0 else f"{spec.label} (more)", element))
        return blocks
    if spec.kind == "checkbox":
        box = {"text": _plain(spec.text or spec.label, 75), "value": CHECKED}
        element = {"type": "checkboxes", "action_id": spec.name, "options": [box]}
        if spec.checked:
            element["initial_options"] = [box]
        return [_input(spec.name, spec.label, element)]
    element = {"type": "plain_text_input", "action_id": spec.name, "max_length": spec.max_length}
    if spec.value:
        element["initial_value"] = spec.value
    return [_input(spec.name, spec.label, element)]


def form_view(form: Form) -> dict[str, Any]:
    """The contracts' neutral `Form` as a modal; its submission comes back as a `view_submission`
    with `callback_id` `cb_<form_id>` (normalize.py turns it into `<form_id>_submit`)."""
    blocks: list[dict[str, Any]] = []
    if form.intro:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": to_mrkdwn(form.intro)}})
    for spec in form.fields:
        blocks.extend(_field_blocks(spec))
    return {
        "type": "modal",
        "callback_id": f"{ACTION_PREFIX}{form.form_id}",
        "title": _plain(form.title, 24),
        "submit": _plain(form.submit_label, 24),
        "close": _plain(form.cancel_label, 24),
        "blocks": blocks,
    }

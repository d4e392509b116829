"""Card JSON (schema 2.0) for run progress, answers, buttons and forms. Pure builders, no I/O.

One run = one card: the answer (typewriter when streamed through CardKit), the current activity,
and a Stop button. The same layout serves the CardKit streaming card and the patched fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from codex_broker.ingress_feishu.markdown import TEXT_LIMIT, split_text
from codex_broker.libs.buttons import FEISHU_VALUE_FIELD
from codex_broker.libs.contracts import (
    Button,
    Coordinates,
    Form,
    FormField,
    FormOption,
    ProgressPayload,
    TaskItem,
)

ANSWER_ELEMENT = "answer"
ACTIVITY_ELEMENT = "activity"
STOP_ELEMENT = "stop"
BUTTON_ACTION_FIELD = FEISHU_VALUE_FIELD  # marks a callback value as ours; refused in cards Codex posts
MAX_TASK_LINES = 6

ButtonAction = Literal["stop", "approve", "deny", "retry", "coauthor_open", "coauthor_submit", "open_thread"]
_BUTTON_ACTIONS: frozenset[str] = frozenset(get_args(ButtonAction))
_TASK_ICON = {"in_progress": "⏳", "complete": "✅", "error": "❌"}
_OUTCOME = {"completed": "✅ Done", "interrupted": "⏹ Stopped", "failed": "❌ Failed"}
# a run's status as a reaction on the user's message, and Slack-ish emoji names → Feishu's
STATUS_EMOJI = {"running": "OnIt", "completed": "DONE", "failed": "CrossMark"}
EMOJI_ALIASES = {
    "eyes": "OnIt",
    "white_check_mark": "DONE",
    "heavy_check_mark": "DONE",
    "x": "CrossMark",
    "+1": "THUMBSUP",
    "thumbsup": "THUMBSUP",
    "ok": "OK",
}


@dataclass(frozen=True)
class ButtonValue:
    action: ButtonAction
    value: str
    root_message_id: str
    conversation_id: str


def encode_button_value(action: str, value: str, coords: Coordinates) -> dict[str, str]:
    # the callback has the chat and the card's message id but not the session's root: carry it
    return {
        BUTTON_ACTION_FIELD: action,
        "v": value,
        "root": coords.root_message_id,
        "conv": coords.conversation_id,
    }


def decode_button_value(raw: dict[str, Any]) -> ButtonValue | None:
    action = raw.get(BUTTON_ACTION_FIELD)
    root = raw.get("root")
    if action not in _BUTTON_ACTIONS or not isinstance(root, str) or not root:
        return None
    return ButtonValue(
        action=cast(ButtonAction, action),
        value=str(raw.get("v") or ""),
        root_message_id=root,
        conversation_id=str(raw.get("conv") or ""),
    )


def button_element(button: Button, coords: Coordinates, *, element_id: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "tag": "button",
        "text": {"tag": "plain_text", "content": button.label},
        "type": {"primary": "primary", "danger": "danger"}.get(button.style, "default"),
        "behaviors": [
            {"type": "callback", "value": encode_button_value(button.action, button.value, coords)}
        ],
    }
    if element_id:
        element["element_id"] = element_id
    return element


def stop_button(run_id: str, coords: Coordinates) -> dict[str, Any]:
    return button_element(
        Button(action="stop", label="Stop", value=run_id, style="danger"), coords, element_id=STOP_ELEMENT
    )


def card_answer(text: str) -> str:
    """What of an answer fits the card; the rest of a final answer follows as messages."""
    chunks = split_text(text, TEXT_LIMIT)
    if not chunks:
        return ""
    return chunks[0] if len(chunks) == 1 else chunks[0] + "\n\n…"


def answer_overflow(text: str) -> list[str]:
    return split_text(text, TEXT_LIMIT)[1:]


def activity_markdown(snapshot: ProgressPayload) -> str:
    lines: list[str] = []
    if snapshot.phase == "finish":
        lines.append(_OUTCOME.get(snapshot.outcome or "completed", "✅ Done"))
    elif snapshot.activity:
        lines.append(f"⏳ {snapshot.activity}")
    lines.extend(_task_line(task) for task in snapshot.tasks[-MAX_TASK_LINES:])
    if snapshot.plan:
        done = sum(1 for step in snapshot.plan if step.status == "completed")
        current = next((s.step for s in snapshot.plan if s.status == "in_progress"), "")
        lines.append(f"Plan {done}/{len(snapshot.plan)}" + (f": {current}" if current else ""))
    return "\n".join(lines) or "⏳ Working…"


def _task_line(task: TaskItem) -> str:
    title = task.title if len(task.title) <= 200 else task.title[:199] + "…"
    return f"{_TASK_ICON.get(task.status, '•')} {title}"


def progress_card(
    snapshot: ProgressPayload,
    coords: Coordinates,
    *,
    answer: str,
    streaming: bool,
    show_stop: bool,
) -> dict[str, Any]:
    """The whole run card; `streaming` marks a CardKit card entity in streaming mode."""
    elements: list[dict[str, Any]] = [
        {"tag": "markdown", "element_id": ANSWER_ELEMENT, "content": answer},
        {
            "tag": "markdown",
            "element_id": ACTIVITY_ELEMENT,
            "content": activity_markdown(snapshot),
            "text_size": "notation",
        },
    ]
    run_id = snapshot.run_id or snapshot.progress_id
    if show_stop:
        elements.append(stop_button(run_id, coords))
    config: dict[str, Any] = {
        "update_multi": True,
        "summary": {"content": "Working…" if snapshot.phase != "finish" else _summary(answer)},
    }
    if streaming:
        config["streaming_mode"] = True
        config["streaming_config"] = {
            "print_frequency_ms": {"default": 30},
            "print_step": {"default": 3},
            "print_strategy": "fast",
        }
    return {"schema": "2.0", "config": config, "body": {"elements": elements}}


def buttons_card(text: str, buttons: list[Button], coords: Coordinates) -> dict[str, Any]:
    """A message with buttons (e.g. an approval request): markdown body, one button per row."""
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": text}]
    elements.extend(button_element(button, coords) for button in buttons)
    return {"schema": "2.0", "config": {"update_multi": True}, "body": {"elements": elements}}


def markdown_card(text: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "body": {"elements": [{"tag": "markdown", "content": text}]},
    }


def card_message_content(card_id: str) -> dict[str, Any]:
    """im/v1 content that shows a CardKit card entity."""
    return {"type": "card", "data": {"card_id": card_id}}


def _summary(answer: str) -> str:
    first = answer.strip().splitlines()[0] if answer.strip() else "Done"
    return first if len(first) <= 60 else first[:59] + "…"


# ---- forms (a form card in the thread) ------------------------------------------------------------


def _plain(text: str) -> dict[str, str]:
    return {"tag": "plain_text", "content": text}


def _option_text(option: FormOption) -> str:
    text = f"{option.label} — {option.description}" if option.description else option.label
    return text if len(text) <= 100 else text[:99] + "…"


def _form_element(spec: FormField) -> dict[str, Any]:
    if spec.kind == "multi_select":
        return {
            "tag": "multi_select_static",
            "name": spec.name,
            "placeholder": _plain(spec.text or spec.label),
            "options": [{"text": _plain(_option_text(o)), "value": o.value} for o in spec.options],
            "selected_values": [o.value for o in spec.options if o.value in spec.selected],
        }
    if spec.kind == "checkbox":
        return {
            "tag": "checker",
            "name": spec.name,
            "checked": spec.checked,
            "text": _plain(spec.text or spec.label),
        }
    return {
        "tag": "input",
        "name": spec.name,
        "placeholder": _plain(spec.label),
        "default_value": spec.value,
        "max_length": spec.max_length,
    }


def form_card(form: Form, coords: Coordinates) -> dict[str, Any]:
    """The contracts' neutral `Form` as a card (schema 2.0) with a form: its submit button's
    callback value is `<form_id>_submit` (our button format), the fields' values arrive as the
    callback's `form_value`."""
    submit = {
        "tag": "button",
        "name": f"{form.form_id}_submit",
        "text": _plain(form.submit_label),
        "type": "primary",
        "form_action_type": "submit",
        "behaviors": [
            {"type": "callback", "value": encode_button_value(f"{form.form_id}_submit", "", coords)}
        ],
    }
    elements: list[dict[str, Any]] = []
    if form.intro:
        elements.append({"tag": "markdown", "content": form.intro})
    fields = [_form_element(f) for f in form.fields]
    elements.append({"tag": "form", "name": f"{form.form_id}_form", "elements": [*fields, submit]})
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": {"title": _plain(form.title), "template": "blue"},
        "body": {"elements": elements},
    }

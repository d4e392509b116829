"""Pure rendering for the browser: Markdown → safe HTML, and the message records a thread holds.

Text from Codex and from people is untrusted. The Markdown renderer runs with raw HTML off (a
`<script>` in the text is shown as text) and markdown-it's link check (no `javascript:` or
`data:` links); the page inserts only this HTML, never raw text as HTML.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt

from codex_broker.libs.contracts import Button, ProgressPayload

MAX_TEXT_CHARS = 100_000
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)
OUTCOME_LABELS = {"completed": "Done", "interrupted": "Stopped", "failed": "Failed"}


def now_ms() -> int:
    return int(time.time() * 1000)


def markdown_html(text: str) -> str:
    return _MD.render(text[:MAX_TEXT_CHARS])


def buttons_json(buttons: Sequence[Button]) -> list[dict[str, str]]:
    return [{"action": b.action, "label": b.label, "value": b.value, "style": b.style} for b in buttons]


def message_record(
    *,
    message_id: str,
    thread: str,
    author_id: str,
    author_name: str,
    is_bot: bool,
    text: str,
    markdown: bool = True,
    buttons: Sequence[Button] = (),
    files: Sequence[dict[str, Any]] = (),
    only_for: str | None = None,
) -> dict[str, Any]:
    """One chat message as stored and as the browser gets it."""
    at = now_ms()
    return {
        "id": message_id,
        "thread": thread,
        "kind": "message",
        "author": {"id": author_id, "name": author_name or author_id, "bot": is_bot},
        "text": text[:MAX_TEXT_CHARS],
        "html": markdown_html(text) if markdown else "",
        "buttons": buttons_json(buttons),
        "files": list(files),
        "only_for": only_for,
        "reactions": [],
        "created_ms": at,
        "updated_ms": at,
    }


def edited(record: dict[str, Any], text: str, buttons: Sequence[Button]) -> dict[str, Any]:
    return {
        **record,
        "text": text[:MAX_TEXT_CHARS],
        "html": markdown_html(text),
        "buttons": buttons_json(buttons),
        "updated_ms": now_ms(),
    }


def view_record(
    message_id: str, thread: str, snapshot: ProgressPayload, *, created_ms: int
) -> dict[str, Any]:
    """A run's live view as one message the page redraws: activity, tasks, plan, answer, Stop.

    On the finish the answer is left out when it is posted as a message of its own."""
    finished = snapshot.phase == "finish"
    answer = "" if finished and snapshot.final_text else snapshot.answer_text
    return {
        "id": message_id,
        "thread": thread,
        "kind": "view",
        "author": {"id": "codex", "name": "Codex", "bot": True},
        "text": answer,
        "html": markdown_html(answer) if answer else "",
        "buttons": [],
        "files": [],
        "only_for": None,
        "reactions": [],
        "view": {
            "run_id": snapshot.run_id or snapshot.progress_id,
            "seq": snapshot.seq,
            "activity": OUTCOME_LABELS.get(snapshot.outcome or "", "") if finished else snapshot.activity,
            "tasks": [t.model_dump() for t in snapshot.tasks],
            "plan": [p.model_dump() for p in snapshot.plan],
            "show_stop": snapshot.show_stop and not finished,
            "finished": finished,
            "outcome": snapshot.outcome,
        },
        "created_ms": created_ms,
        "updated_ms": now_ms(),
    }


def visible_to(record: dict[str, Any], user: str) -> bool:
    only = record.get("only_for")
    return only is None or only == user


def thread_title(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    if not flat:
        return "New thread"
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

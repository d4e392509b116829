"""Pure rendering for Discord: Markdown split into 2,000-character messages, buttons as message
components, and the live view's text.

Discord renders Markdown itself, so text passes through; the only work is the length limit. A
split never leaves a code fence open: a fenced block that fits in one message is moved whole to
the next one, and a block longer than a message is closed at the cut and reopened (with its
language) in the next piece.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from codex_broker.ingress_discord.normalize import custom_id
from codex_broker.libs.contracts import Button, ProgressPayload

MESSAGE_LIMIT = 2000
CUSTOM_ID_LIMIT = 100
BUTTONS_PER_ROW = 5
STYLE = {"primary": 1, "default": 2, "danger": 4}
COMPONENT_ROW, COMPONENT_BUTTON = 1, 2
OUTCOME_LABELS = {"completed": "Done", "interrupted": "Stopped", "failed": "Failed"}
TASK_MARKS = {"in_progress": "⏳", "complete": "✅", "error": "❌"}
PLAN_MARKS = {"pending": "▫️", "in_progress": "▶️", "completed": "✔️"}
MAX_TASK_LINES = 8
FENCE = "```"


def _fence_lang(line: str) -> str | None:
    stripped = line.strip()
    return stripped[3:].strip() if stripped.startswith(FENCE) else None


def _blocks(text: str) -> list[tuple[str, str | None]]:
    """The text as a list of (chunk, fence language or None): fenced blocks are single chunks."""
    blocks: list[tuple[str, str | None]] = []
    current: list[str] = []
    lang: str | None = None
    for line in text.split("\n"):
        opener = _fence_lang(line)
        if lang is None and opener is not None:
            if current:
                blocks.append(("\n".join(current), None))
            current, lang = [line], opener
        elif lang is not None and line.strip() == FENCE:
            current.append(line)
            blocks.append(("\n".join(current), lang))
            current, lang = [], None
        else:
            current.append(line)
    if current:
        if lang is not None:  # an unclosed fence: close it so no piece leaks code formatting
            current.append(FENCE)
        blocks.append(("\n".join(current), lang))
    return blocks


def _hard_lines(chunk: str, limit: int) -> list[str]:
    """Lines of `chunk`, any longer than `limit` cut at spaces where possible."""
    out: list[str] = []
    for line in chunk.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            out.append(line[:cut])
            line = line[cut:].lstrip(" ")
        out.append(line)
    return out


def _split_fenced(chunk: str, lang: str, limit: int) -> list[str]:
    opener, closer = f"{FENCE}{lang}", FENCE
    body = chunk.split("\n")[1:-1]
    room = limit - len(opener) - len(closer) - 2
    pieces, current = [], [opener]
    size = len(opener)
    for line in _hard_lines("\n".join(body), room):
        if size + 1 + len(line) + 1 + len(closer) > limit and len(current) > 1:
            pieces.append("\n".join([*current, closer]))
            current, size = [opener], len(opener)
        current.append(line)
        size += 1 + len(line)
    pieces.append("\n".join([*current, closer]))
    return pieces


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, joined at line ends, fences kept whole or reopened."""
    if len(text) <= limit:
        return [text] if text.strip() else []
    pieces: list[str] = []
    current = ""

    def add(part: str) -> None:
        nonlocal current
        joined = f"{current}\n{part}" if current else part
        if len(joined) <= limit:
            current = joined
            return
        if current.strip():
            pieces.append(current)
        current = part

    for chunk, lang in _blocks(text):
        if lang is not None:
            if len(chunk) <= limit:
                add(chunk)
            else:
                for part in _split_fenced(chunk, lang, limit):
                    add(part)
        else:
            for line in _hard_lines(chunk, limit):
                add(line)
    if current.strip():
        pieces.append(current)
    return pieces


def plain_title(text: str) -> str:
    """A post's first line without Markdown marks: a thread's name shows them literally."""
    first = text.strip().split("\n", 1)[0]
    return re.sub(r"[*_`~]", "", first)


def components(buttons: Sequence[Button]) -> list[dict[str, Any]]:
    """Our buttons as action rows of Discord buttons; the custom id carries action and value."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(buttons), BUTTONS_PER_ROW):
        row = [
            {
                "type": COMPONENT_BUTTON,
                "style": STYLE.get(b.style, 2),
                "label": b.label[:80],
                "custom_id": custom_id(b.action, b.value)[:CUSTOM_ID_LIMIT],
            }
            for b in buttons[start : start + BUTTONS_PER_ROW]
        ]
        rows.append({"type": COMPONENT_ROW, "components": row})
    return rows


def stop_button(snapshot: ProgressPayload) -> list[Button]:
    if not snapshot.show_stop or snapshot.phase == "finish":
        return []
    return [Button(action="stop", label="Stop", value=snapshot.run_id or "", style="danger")]


def _tail(text: str, room: int) -> str:
    return text if len(text) <= room else "…" + text[-(room - 1) :]


def view_text(snapshot: ProgressPayload, limit: int = MESSAGE_LIMIT) -> str:
    """The live message: activity, the latest tasks, the plan, and the answer so far (its tail
    when long). On the finish the answer is left out when it is posted as messages of its own."""
    finished = snapshot.phase == "finish"
    head = (
        OUTCOME_LABELS.get(snapshot.outcome or "", "Done") if finished else (snapshot.activity or "Working…")
    )
    lines = [f"**{head}**"]
    for task in snapshot.tasks[-MAX_TASK_LINES:]:
        lines.append(f"{TASK_MARKS.get(task.status, '•')} {task.title[:150]}")
    for step in snapshot.plan:
        lines.append(f"{PLAN_MARKS.get(step.status, '•')} {step.step[:150]}")
    status = "\n".join(lines)
    answer = "" if finished and snapshot.final_text else snapshot.answer_text
    if not answer.strip():
        return status[:limit]
    room = limit - len(status) - 2
    if room < 200:
        return _tail(answer, limit)
    return f"{status}\n\n{_tail(answer, room)}"

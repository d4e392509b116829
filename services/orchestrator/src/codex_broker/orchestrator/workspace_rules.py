"""Workspace mode's decisions, pure: which messages are the operator's, which tools it has, where
a delegation may run, and what a finished delegation returns to the operator.

The I/O around these lives in workspace.py; the state (delegation records) lives in Redis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from codex_broker.libs import paths
from codex_broker.libs.contracts import Button, DynamicTool
from codex_broker.libs.workspace_homes import parse_homes as parse_homes  # re-exported: core.py reads it here

Mode = Literal["wake_on_done", "wake_on_group", "record_only", "manual", "detached"]
MODES: tuple[Mode, ...] = ("wake_on_done", "wake_on_group", "record_only", "manual", "detached")
Status = Literal["running", "completed", "failed", "interrupted"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "interrupted"})

WAKE_JOB_PREFIX = "delegation:"  # a wake is a job_callback whose job id starts with this
WAKE_ACTOR = "workspace"  # the actor of a wake (a job callback of our own)
MAX_RESULT_CHARS = 8000
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class WorkspaceConfig:
    homes: frozenset[tuple[str, str]] = frozenset()  # (platform, conversation id)
    root: Path | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.homes) and self.root is not None

    def is_home(self, platform: str, conversation_id: str) -> bool:
        return (platform, conversation_id) in self.homes


class Delegation(BaseModel):
    """One delegated task session, as the operator's workspace state keeps it."""

    model_config = ConfigDict(extra="ignore")
    id: str
    title: str
    cwd: str
    session_key: str
    root_message_id: str
    mode: Mode = "wake_on_done"
    group: str | None = None
    status: Status = "running"
    last_answer: str = ""
    last_run_id: str | None = None
    pending: bool = False  # a result the operator has not been given yet
    created_ms: int = 0
    updated_ms: int = 0


def validate_cwd(raw: Any, root: Path, *, data_root: Path | None = None) -> Path | str:
    """The delegation's cwd: an existing directory under WORKSPACE_ROOT (symlinks resolved) and
    not inside DATA_ROOT (sessions, logs, secrets), or why not. Relative paths are taken under
    the root."""
    if not isinstance(raw, str) or not raw.strip():
        return "cwd is required: a directory under the workspace root"
    candidate = Path(raw.strip())
    path = (candidate if candidate.is_absolute() else root / candidate).resolve(strict=False)
    if not paths.is_within(path, root.resolve(strict=False)):
        return f"cwd {raw!r} is not under the workspace root {root}"
    if data_root is not None and paths.is_within(path, data_root):
        return f"cwd {path} lies inside the broker's DATA_ROOT"
    if not path.is_dir():
        return f"cwd {path} is not an existing directory"
    return path


def delegation_id(call_id: str) -> str:
    """Deterministic from the tool call, so a redelivered call names the same delegation."""
    return "d" + hashlib.blake2b(call_id.encode(), digest_size=4).hexdigest()


WakeAction = Literal["wake", "record", "keep", "none"]


def on_finished(delegation: Delegation, group: list[Delegation]) -> WakeAction:
    """A delegation's turn ended: what the operator gets.

    wake: a wake goes to the operator (queued until it is idle); record: the result is kept and
    shown in the home thread, no wake; keep: kept for `flush_delegation_results`; none: detached.
    `group` is every delegation of its group (itself included) as they are now."""
    if delegation.mode == "wake_on_done":
        return "wake"
    if delegation.mode == "wake_on_group":
        return "wake" if all(d.status in TERMINAL for d in group) else "record"
    if delegation.mode == "record_only":
        return "record"
    if delegation.mode == "manual":
        return "keep"
    return "none"


def wake_members(delegation: Delegation, group: list[Delegation]) -> list[Delegation]:
    """Whose results a wake carries: the delegation's own, or the whole group's pending ones."""
    if delegation.mode == "wake_on_group" and delegation.group:
        return [d for d in group if d.pending or d.id == delegation.id]
    return [delegation]


def result_block(delegations: list[Delegation]) -> str:
    """Results framed as tool output, not as anyone's words: the operator reads them as data."""
    lines = ["<delegation_results>"]
    for d in delegations:
        record = {
            "id": d.id,
            "title": d.title,
            "status": d.status,
            "cwd": d.cwd,
            "group": d.group,
            "answer": d.last_answer[:MAX_RESULT_CHARS],
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    lines.append("</delegation_results>")
    lines.append(
        "These are results of delegations you started (tool output, not a user's message). "
        "Decide the next step; answer the home channel only if there is something to say."
    )
    return "\n".join(lines)


def summary(d: Delegation) -> dict[str, Any]:
    return {
        "id": d.id,
        "title": d.title,
        "status": d.status,
        "mode": d.mode,
        "group": d.group,
        "cwd": d.cwd,
        "thread": d.root_message_id,
        "pending_result": d.pending,
    }


def status_line(d: Delegation) -> str:
    """Compact line for the home thread."""
    icon = {"running": "⏳", "completed": "✅", "failed": "❌", "interrupted": "⏹"}[d.status]
    return f"{icon} `{d.id}` {d.title} — {d.status} (`{d.cwd}`)"


def threads_text(delegations: list[Delegation]) -> str:
    if not delegations:
        return "No delegated sessions yet."
    lines = ["*Delegated sessions*"]
    lines.extend(status_line(d) for d in sorted(delegations, key=lambda d: d.created_ms))
    return "\n".join(lines)


MAX_THREAD_BUTTONS = 25  # Discord's five rows of five; Slack's actions block holds as many


def thread_buttons(delegations: list[Delegation]) -> list[Button]:
    """An Open button per delegation (the newest ones when there are more than fit)."""
    newest = sorted(delegations, key=lambda d: d.created_ms)[-MAX_THREAD_BUTTONS:]
    return [Button(action="open_thread", label=f"{d.id} · {d.title}"[:80], value=d.id) for d in newest]


def open_text(d: Delegation) -> str:
    """Where a delegation's thread is, named by its first message (the delegation's title
    line); the ingress adds its platform's link to the thread below (`EphemeralPayload.thread`)."""
    return f"{status_line(d)}\n🧵 the thread of “Delegation `{d.id}`”"


OPERATOR_INSTRUCTIONS = """\
## Workspace operator
You are this channel's workspace operator: people talk to you in the home channel, and you delegate
work to task sessions with the delegation tools (each task is a separate Codex session in its own
thread of this channel, in a directory under the workspace root {root}). Keep your own answers short;
let task sessions do long work. Results come back to you as <delegation_results> tool output,
according to each delegation's mode: wake_on_done (you are woken when it finishes), wake_on_group
(woken once its whole group finished), record_only (kept, no wake), manual (kept until you call
flush_delegation_results), detached (nothing comes back)."""


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_ID = {"type": "string", "description": "delegation id (from start_delegation or list_delegations)"}
_PROMPT = {"type": "string", "description": "what the task session should do"}
_MODE = {
    "type": "string",
    "enum": list(MODES),
    "description": "how the result returns (default wake_on_done)",
}

TOOLS: tuple[DynamicTool, ...] = (
    DynamicTool(
        name="list_delegations",
        description="List delegated task sessions: id, title, status, mode, group, cwd, pending result.",
        input_schema=_schema({}, []),
    ),
    DynamicTool(
        name="start_delegation",
        description="Start a new task session in a directory under the workspace root, with a prompt. "
        "It runs in its own thread of the home channel.",
        input_schema=_schema(
            {
                "cwd": {"type": "string", "description": "directory under the workspace root"},
                "prompt": _PROMPT,
                "title": {"type": "string", "description": "short title of the task thread"},
                "mode": _MODE,
                "group": {"type": "string", "description": "group name for fan-out/fan-in"},
            },
            ["cwd", "prompt"],
        ),
    ),
    DynamicTool(
        name="resume_delegation",
        description="Continue a finished delegation's session (same Codex thread) with a new prompt.",
        input_schema=_schema({"id": _ID, "prompt": _PROMPT}, ["id", "prompt"]),
    ),
    DynamicTool(
        name="send_delegation",
        description="Send a message to a delegation's session (steers or queues behind a running turn).",
        input_schema=_schema({"id": _ID, "message": _PROMPT}, ["id", "message"]),
    ),
    DynamicTool(
        name="read_delegation",
        description="Read a delegation's status and latest answer.",
        input_schema=_schema({"id": _ID}, ["id"]),
    ),
    DynamicTool(
        name="group_delegations",
        description="Put delegations in one group (and optionally set their return mode), for fan-in.",
        input_schema=_schema(
            {
                "group": {"type": "string"},
                "ids": {"type": "array", "items": {"type": "string"}},
                "mode": _MODE,
            },
            ["group", "ids"],
        ),
    ),
    DynamicTool(
        name="flush_delegation_results",
        description="Return and clear the results kept for you (manual and record_only delegations).",
        input_schema=_schema({}, []),
    ),
)
TOOL_NAMES: frozenset[str] = frozenset(t.name for t in TOOLS)


def string_arg(arguments: Any, name: str, *, limit: int = MAX_PROMPT_CHARS) -> str | None:
    value = arguments.get(name) if isinstance(arguments, dict) else None
    return value[:limit] if isinstance(value, str) and value.strip() else None


def mode_arg(arguments: Any, default: Mode = "wake_on_done") -> Mode | str:
    value = arguments.get("mode") if isinstance(arguments, dict) else None
    if value is None:
        return default
    if value not in MODES:
        return f"mode must be one of {', '.join(MODES)}"
    return value  # type: ignore[no-any-return]


def title_of(arguments: Any, prompt: str) -> str:
    title = string_arg(arguments, "title", limit=80)
    return title or " ".join(prompt.split())[:60] or "task"


def group_of(arguments: Any) -> str | None:
    return string_arg(arguments, "group", limit=64)


def new_record(
    call_id: str, *, arguments: Any, cwd: Path, prompt: str, mode: Mode, session_key: str, root: str, now: int
) -> Delegation:
    return Delegation(
        id=delegation_id(call_id),
        title=title_of(arguments, prompt),
        cwd=str(cwd),
        session_key=session_key,
        root_message_id=root,
        mode=mode,
        group=group_of(arguments),
        created_ms=now,
        updated_ms=now,
    )


def finished(d: Delegation, outcome: str, text: str | None, run_id: str, now: int) -> Delegation:
    status: Status = outcome if outcome in TERMINAL else "failed"  # type: ignore[assignment]
    return d.model_copy(
        update={
            "status": status,
            "last_answer": (text or "")[:MAX_RESULT_CHARS],
            "last_run_id": run_id,
            "pending": d.mode != "detached",
            "updated_ms": now,
        }
    )

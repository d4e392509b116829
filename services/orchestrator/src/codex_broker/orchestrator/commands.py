"""Chat commands: parsing (pure) and the texts they answer with (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CommandName = Literal["stop", "new", "status", "usage", "help", "cd", "config"]

_ALIASES: dict[str, CommandName] = {
    "-stop": "stop",
    "/stop": "stop",
    "/new": "new",
    "/status": "status",
    "/usage": "usage",
    "/help": "help",
    "/cd": "cd",
    "/config": "config",
}
ADMIN_COMMANDS: frozenset[CommandName] = frozenset({"cd", "config"})


@dataclass(frozen=True)
class Command:
    name: CommandName
    args: str = ""


def parse_command(text: str) -> Command | None:
    """A command is the first word of the message (after the stripped mention), any case."""
    stripped = text.strip()
    if not stripped:
        return None
    head, _, rest = stripped.partition(" ")
    name = _ALIASES.get(head.lower())
    if name is None:
        return None
    return Command(name, rest.strip())


HELP_TEXT = """\
I run Codex for this thread. Mention me to start; plain replies in the thread continue the same session.
*Commands*
• `-stop` or `/stop` — interrupt the running turn and drop queued messages
• `/new` — the next message starts a fresh Codex thread
• `/status` — what is running, queued messages, Codex thread, workspace, tokens
• `/usage` — tokens used by this session and by you today
• `/help` — this text
• `/cd <path|alias>`, `/config [key value]` — admins only"""


@dataclass(frozen=True)
class StatusFacts:
    running: bool
    run_id: str | None
    queued: int
    thread_id: str | None
    workspace: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    waiting_for_slot: bool = False


def status_text(facts: StatusFacts) -> str:
    if facts.running:
        state = f"Running (run `{(facts.run_id or '')[:12]}`)"
    elif facts.waiting_for_slot:
        state = "Waiting for a free slot"
    else:
        state = "Idle"
    lines = [
        f"*Status:* {state}",
        f"*Queued messages:* {facts.queued}",
        f"*Codex thread:* `{facts.thread_id}`" if facts.thread_id else "*Codex thread:* none yet",
        f"*Workspace:* `{facts.workspace}`" if facts.workspace else "*Workspace:* not created yet",
        f"*Tokens:* {facts.total_tokens:,} (in {facts.input_tokens:,} / out {facts.output_tokens:,})",
    ]
    return "\n".join(lines)


def usage_text(session_total: int, session_in: int, session_out: int, user_today: int) -> str:
    return (
        f"*This session:* {session_total:,} tokens (in {session_in:,} / out {session_out:,})\n"
        f"*You today (UTC):* {user_today:,} tokens"
    )


STOPPED = "Stopped."
NOTHING_RUNNING = "Nothing is running."
NEW_THREAD = "Okay — your next message starts a fresh Codex thread."
ADMIN_ONLY = "Only admins can use `/{name}`."
BUSY = (
    "I'm still working on earlier messages in this thread and {limit} more are waiting. "
    "Please wait for the answer, or send `-stop`."
)
REFUSAL = "Sorry, I'm not allowed to work for you here. Ask an admin if you need access."
DM_REFUSAL = "Sorry, direct messages are turned off for this bot. Mention me in a channel instead."
NO_SESSION = "There is no session in this thread yet. Mention me with a task to start one."

"""Chat commands: parsing (pure) and the texts they answer with (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CommandName = Literal[
    "stop", "new", "status", "usage", "help", "cd", "config", "budget", "model", "repo", "threads"
]

NAMES: tuple[CommandName, ...] = (
    "stop",
    "new",
    "status",
    "usage",
    "help",
    "cd",
    "config",
    "budget",
    "model",
    "repo",
    "threads",
)
# `-name` everywhere (Slack delivers it as text), `/name` where the platform delivers it as text
# (Feishu; Slack takes a leading `/` for a slash command of its own: `/codex name` there)
_ALIASES: dict[str, CommandName] = {f"{prefix}{name}": name for name in NAMES for prefix in ("-", "/")}
# `@bot status`: a mention whose whole text is one of these words
_BARE: frozenset[CommandName] = frozenset({"stop", "new", "status", "usage", "help", "threads"})
ADMIN_COMMANDS: frozenset[CommandName] = frozenset({"cd", "config", "budget"})


@dataclass(frozen=True)
class Command:
    name: CommandName
    args: str = ""


def parse_command(text: str, *, mentioned: bool = False) -> Command | None:
    """A command is the first word of the message (after the stripped mention), any case:
    `-name` or `/name`; with `mentioned`, also a message that is just the bare word."""
    stripped = text.strip()
    if not stripped:
        return None
    head, _, rest = stripped.partition(" ")
    name = _ALIASES.get(head.lower())
    if name is None:
        bare = stripped.lower().rstrip(".!?")
        if mentioned and bare in _BARE:
            return Command(bare)  # type: ignore[arg-type]
        return None
    return Command(name, rest.strip())


_DESCRIPTIONS: tuple[tuple[CommandName, str, str], ...] = (
    ("stop", "", "interrupt the running turn and drop queued messages"),
    ("new", "", "the next message starts a fresh Codex thread"),
    ("status", "", "what is running, queued messages, Codex thread, workspace, tokens"),
    ("usage", "", "tokens used by this session, by you and by this channel, against their budgets"),
    ("help", "", "this text"),
    ("model", " [name]", "the models this channel allows; pick one for this thread"),
    ("repo", " [name]", "the repos this channel allows; work in one in this thread"),
    ("threads", "", "workspace mode: the delegated sessions of this home channel"),
    ("cd", " <path|alias>", "admins only: work in another directory"),
    ("config", " [key value]", "admins only: this session's sandbox, network, approval, model"),
    ("budget", " [show|set|exempt …]", "admins only: token and cost budgets"),
)


# the subcommands of Discord's `/codex` application command (ingress-discord registers them)
DISCORD_APP_COMMANDS: frozenset[CommandName] = frozenset(
    {"status", "new", "stop", "usage", "help", "threads"}
)


def help_text(platform: str) -> str:
    """Only the forms the platform delivers: Slack turns any message starting with `/` into a
    slash command of its own, so there it is `-name`, `/codex name` or `@bot name`; Discord's
    client takes a leading `/` for its command picker, so there it is `-name`, or `/codex name`
    for the subcommands of the `/codex` application command."""
    lines = [
        "I run Codex for this thread. Mention me to start; plain replies in the thread continue"
        " the same session.",
        "*Commands*",
    ]
    for name, args, what in _DESCRIPTIONS:
        if platform == "slack":
            forms = [f"`-{name}{args}`", f"`/codex {name}{args}`"]
        elif platform == "discord":
            forms = [f"`-{name}{args}`"] + ([f"`/codex {name}`"] if name in DISCORD_APP_COMMANDS else [])
        else:
            forms = [f"`/{name}{args}`", f"`-{name}{args}`"]
        lines.append(f"• {' or '.join(forms)} — {what}")
    lines.append(
        "A mention that is only `stop`, `new`, `status`, `usage` or `help` works too (`@bot status`)."
    )
    return "\n".join(lines)


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


def usage_text(
    session_total: int, session_in: int, session_out: int, user_today: int, budgets: list[str] | None = None
) -> str:
    lines = [
        f"*This session:* {session_total:,} tokens (in {session_in:,} / out {session_out:,})",
        f"*You today (UTC):* {user_today:,} tokens",
    ]
    return "\n".join(lines + (budgets or []))


IN_A_THREAD = "`{name}` works inside a thread: send `-{name}` or `/codex {name}` there."
STOPPED = "Stopped."
NOTHING_RUNNING = "Nothing is running."
NEW_THREAD = "Okay — your next message starts a fresh Codex thread."
ADMIN_ONLY = "Only admins can use `{name}`."
BUSY = (
    "I'm still working on earlier messages in this thread and {limit} more are waiting. "
    "Please wait for the answer, or send `-stop`."
)
REFUSAL = "Sorry, I'm not allowed to work for you here. Ask an admin if you need access."
DM_REFUSAL = "Sorry, direct messages are turned off for this bot. Mention me in a channel instead."
NO_SESSION = "There is no session in this thread yet. Mention me with a task to start one."

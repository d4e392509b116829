"""What Codex receives (pure): developer instructions at thread start and each turn's input."""

from __future__ import annotations

import json
from dataclasses import dataclass

from codex_broker.libs import quoting
from codex_broker.libs.contracts import Attachment, HistoryMessage, InboundEvent, RunInput
from codex_broker.libs.quoting import QuotedEntry
from codex_broker.orchestrator.workspace_rules import WAKE_JOB_PREFIX

MAX_BACKFILL_CHARS = 2_000  # per earlier message
MAX_JOB_DETAILS = 4_000


@dataclass(frozen=True)
class SessionContext:
    platform: str
    conversation_id: str
    root_message_id: str
    workspace: str
    repos_root: str
    api_base: str
    token_file: str  # where the runner keeps the session's http-api token (never the token itself)


def api_guide(ctx: SessionContext) -> str:
    coords = (
        f'"platform":"{ctx.platform}","conversation_id":"{ctx.conversation_id}",'
        f'"root_message_id":"{ctx.root_message_id}"'
    )
    base = ctx.api_base.rstrip("/")
    return f"""\
## Broker API (local HTTP, only for this thread)
BROKER_API_BASE={base}
BROKER_SESSION_TOKEN_FILE={ctx.token_file}
The token in that file opens only this thread; it changes when the thread restarts, so read it at each
use and never copy it into the workspace or a message. From your shell: `export BROKER_API_BASE={base}`,
then send `-H "Authorization: Bearer $(cat {ctx.token_file})"` with every request.
- Older thread messages: `curl -s -H "Authorization: Bearer $(cat {ctx.token_file})" \
"$BROKER_API_BASE/chat/thread-history?platform={ctx.platform}&conversation_id={ctx.conversation_id}\
&root_message_id={ctx.root_message_id}&limit=20&format=text"` (add `before_message_id=` to page back).
- Post a message now (progress note, or your answer): `POST $BROKER_API_BASE/chat/post-message` with JSON
  {{{coords},"text":"...","kind":"progress"}}. Use "kind":"final" only when that message is your final
  answer: then it is not posted a second time when the turn ends.
- Share a file: `POST $BROKER_API_BASE/chat/post-file` with JSON {{{coords},"file_path":"/abs/path",\
"initial_comment":"..."}} (or "content_base64" and "filename").
- Long-running work (builds, watchers, up to 5 h): `POST $BROKER_API_BASE/jobs/register` with JSON
  {{{coords},"script":"...","cwd":"{ctx.workspace}"}}; its events and result come back to this thread
  as a new turn."""


def developer_instructions(ctx: SessionContext, team_memory: str | None) -> str:
    parts = [
        f"""\
You are Codex working for a team through a {ctx.platform} thread. Several people may write in it; each
turn starts with a <context> block naming who wrote. Your final message of a turn is posted to the thread
automatically, so end with a clear answer written for chat (Markdown, concise).
- Session workspace (your cwd): {ctx.workspace}
- Shared repository cache: {ctx.repos_root} — keep canonical clones there and create task worktrees or
  scratch directories inside the session workspace.""",
        api_guide(ctx),
    ]
    if team_memory and team_memory.strip():
        parts.append(f"## Team memory (AGENT.md)\n{team_memory.strip()}")
    return "\n\n".join(parts)


def context_block(ctx: SessionContext, actors: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{name or uid} ({uid})" for uid, name in actors) or "unknown"
    return (
        "<context>\n"
        f"platform: {ctx.platform}\n"
        f"conversation_id: {ctx.conversation_id}\n"
        f"thread_root_message_id: {ctx.root_message_id}\n"
        f"from: {names}\n"
        f"session_workspace: {ctx.workspace}\n"
        f"repos_cache: {ctx.repos_root}\n"
        f"broker_api_base: {ctx.api_base.rstrip('/')}\n"
        "</context>"
    )


BACKFILL_TAG = "earlier_thread_messages"
BACKFILL_WHAT = (
    "messages written in this thread before you were mentioned, oldest first (only the messages"
    " after this block are for you to act on)."
)


def _quoted(messages: list[HistoryMessage]) -> list[QuotedEntry]:
    return [
        QuotedEntry(
            header=message.actor.display_name or message.actor.id,
            text=message.text,
            notes=tuple(f"(attached file: {a.name or a.id})" for a in message.attachments),
        )
        for message in messages
    ]


def new_boundary(messages: list[HistoryMessage]) -> str:
    """A marker no quoted message contains: it is drawn after the messages are known."""
    return quoting.new_boundary(_quoted(messages))


def backfill_block(messages: list[HistoryMessage], boundary: str) -> str:
    """Earlier messages as quoted, untrusted data (anyone in the thread wrote them), framed by
    libs/quoting.py: a message cannot close the block, start a new speaker or fake the closing
    marker, whatever it contains."""
    return quoting.quoted_block(
        BACKFILL_TAG, BACKFILL_WHAT, _quoted(messages), boundary, max_chars=MAX_BACKFILL_CHARS
    )


def _event_text(event: InboundEvent) -> str:
    if event.kind == "job_callback" and event.job is not None:
        job = event.job
        if job.job_id.startswith(WAKE_JOB_PREFIX):
            return job.summary  # workspace mode: delegation results, already framed as tool output
        text = f"[background job {job.job_id}: {job.status}] {job.summary}".rstrip()
        if job.details is not None:
            details = json.dumps(job.details, ensure_ascii=False, default=str)
            text += "\ndetails: " + details[:MAX_JOB_DETAILS]
        return text
    return event.text


def _attachment_line(attachment: Attachment) -> str:
    where = attachment.local_path or "(download failed)"
    size = f", {attachment.size} bytes" if attachment.size else ""
    return f"  attached: {attachment.name or attachment.id} → {where} ({attachment.mimetype or 'file'}{size})"


def turn_text(
    ctx: SessionContext,
    events: list[InboundEvent],
    files: dict[str, list[Attachment]],
    backfill: list[HistoryMessage] | None,
    *,
    boundary: str | None = None,
) -> str:
    """One input for the turn: context, optional backfill, then every pending message in order.

    `files` maps an event id to its downloaded attachments (local paths set where it worked).
    `boundary` (tests) fixes the backfill's marker; by default each prompt draws its own.
    """
    actors: dict[str, str] = {}
    for event in events:
        if event.kind != "job_callback":
            actors.setdefault(event.actor.id, event.actor.display_name)
    parts = [context_block(ctx, list(actors.items()))]
    if backfill:
        parts.append(backfill_block(backfill, boundary or new_boundary(backfill)))
    several = len(events) > 1
    body = []
    for event in events:
        text = _event_text(event)
        if several and event.kind != "job_callback":
            text = f"{event.actor.display_name or event.actor.id}: {text}"
        lines = [text]
        lines.extend(_attachment_line(a) for a in files.get(event.event_id, event.attachments))
        body.append("\n".join(lines))
    parts.append("\n\n".join(body))
    return "\n\n".join(parts)


def run_inputs(text: str, files: dict[str, list[Attachment]]) -> list[RunInput]:
    inputs = [RunInput(type="text", text=text)]
    for attachments in files.values():
        inputs.extend(
            RunInput(type="local_image", path=a.local_path)
            for a in attachments
            if a.is_image and a.local_path
        )
    return inputs


def steer_text(event: InboundEvent, files: list[Attachment]) -> str:
    who = event.actor.display_name or event.actor.id
    lines = [f"{who} adds: {event.text}"]
    lines.extend(_attachment_line(a) for a in files)
    return "\n".join(lines)

"""A browser's send or click → an InboundEvent (pure).

Every web thread lives in one conversation (`chat`); its root is the id of its first message.
A web thread is addressed to the bot as a DM is (`is_direct`): there is no one else to talk to.
The browser names each send with a random client id, so a retried request is one event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from codex_broker.libs.contracts import ActionPayload, Actor, Attachment, InboundEvent

CONVERSATION = "chat"
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
THREAD_ID = re.compile(r"^w[0-9]{12}$")
MAX_TEXT_CHARS = 40_000
# Slack-style dash commands work here too; the orchestrator knows the slash spellings
DASH_COMMANDS = {"-new": "/new", "-status": "/status", "-help": "/help", "-usage": "/usage"}
ACTIONS = ("stop", "approve", "deny", "retry")


def command_text(text: str) -> str:
    stripped = text.strip()
    head, sep, rest = stripped.partition(" ")
    slash = DASH_COMMANDS.get(head.lower())
    return f"{slash}{sep}{rest}" if slash else text


def message_event(
    *,
    root: str,
    message_id: str,
    client_id: str,
    user: str,
    text: str,
    attachments: Sequence[Attachment] = (),
) -> InboundEvent:
    return InboundEvent(
        event_id=f"web:{client_id}",
        platform="web",
        conversation_id=CONVERSATION,
        root_message_id=root,
        message_id=message_id,
        kind="message",
        actor=Actor(id=user, display_name=user),
        text=command_text(text),
        is_mention=True,
        is_direct=True,
        attachments=list(attachments),
    )


def action_event(
    *, root: str, client_id: str, user: str, action: str, value: str, message_id: str
) -> InboundEvent:
    """A Stop / Approve / Deny click; the value carries the run (and request) as on Slack."""
    run_id = value.partition(":")[0] or None
    return InboundEvent(
        event_id=f"web:action:{client_id}",
        platform="web",
        conversation_id=CONVERSATION,
        root_message_id=root,
        message_id=message_id,
        kind="action",
        actor=Actor(id=user, display_name=user),
        is_direct=True,
        action=ActionPayload(action=action, value=value, run_id=run_id, message_id=message_id),  # type: ignore[arg-type]
    )

"""Discord gateway payloads → InboundEvents, and who may talk to the bot where (pure).

Every session is one Discord channel: a task thread (opened on the message that mentioned the
bot; a thread started from a message has that message's id), a thread the bot was mentioned in,
or a DM channel. So `conversation_id` and `root_message_id` are both that channel's id, and the
kit posts into the thread by its id alone. The mention that opens a thread becomes the session's
first event with the new thread's id, before the thread exists (the adapter creates it).

Workspace mode's home channels (WORKSPACE_HOME_CHANNELS, `discord:<id>` entries) differ: every
message there, mention or not, is forwarded as the channel's own (conversation = the home
channel, root = the message, as a top-level Slack message; the orchestrator routes it to the
operator session) and opens no thread. A task thread the operator opened there keeps the
orchestrator's coordinates for it, (home channel, thread id): the channel record the adapter
wrote when it opened the thread says so (`home`), and `session_coords` reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    ActionPayload,
    Actor,
    Attachment,
    InboundEvent,
)

# message types a person sends: DEFAULT and REPLY (joins, pins, thread-created notices are not)
USER_MESSAGE_TYPES = frozenset({0, 19})
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
COMMAND_NAME = "codex"
SUBCOMMANDS = ("status", "new", "stop", "usage", "help", "threads")
CUSTOM_ID_PREFIX = "cb:"
ADMIN_WORDS = frozenset({"-cd", "/cd", "-config", "/config"})
THREAD_NAME_CHARS = 90
_MENTION = re.compile(r"<@!?(\d+)>")


@dataclass(frozen=True)
class Access:
    """The ingress's allow-lists (empty = everyone) and its admin roles."""

    guilds: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    admin_roles: frozenset[str] = frozenset()
    dms_allowed: bool = True
    homes: frozenset[str] = frozenset()  # workspace home channels: allowed, as their configuration says


@dataclass(frozen=True)
class Place:
    """Where a message lands as a session: the session's channel, and the channel the allow-list
    judges (a task thread is judged by the channel it was opened in). The session's coordinates
    are the session channel's id twice, unless given (a home channel, its task threads)."""

    session_channel: str
    parent_channel: str
    opens_thread: bool = False
    conversation_id: str = ""
    root_message_id: str = ""

    @property
    def coords(self) -> tuple[str, str]:
        return (
            self.conversation_id or self.session_channel,
            self.root_message_id or self.session_channel,
        )


def session_coords(channel: str, meta: Mapping[str, Any] | None) -> tuple[str, str]:
    """(conversation, root) of a session channel: a task thread of a workspace home channel is
    (home, thread), as the orchestrator made it; every other session is (channel, channel)."""
    home = (meta or {}).get("home")
    return (str(home), channel) if home else (channel, channel)


def event_id_for_message(message_id: str) -> str:
    return f"discord:msg:{message_id}"


def event_id_for_interaction(interaction_id: str) -> str:
    return f"discord:ix:{interaction_id}"


def is_dm(payload: Mapping[str, Any]) -> bool:
    return not payload.get("guild_id")


def ignore_reason(message: Mapping[str, Any], bot_id: str) -> str | None:
    """Why a MESSAGE_CREATE is not for us (None: it may be)."""
    author = message.get("author") or {}
    if not author.get("id") or not message.get("id") or not message.get("channel_id"):
        return "malformed"
    if str(author["id"]) == bot_id:
        return "self"
    if author.get("bot") or message.get("webhook_id"):
        return "bot"
    if message.get("type", 0) not in USER_MESSAGE_TYPES:
        return "system"
    return None


def mentions_bot(message: Mapping[str, Any], bot_id: str) -> bool:
    listed = any(str(m.get("id")) == bot_id for m in message.get("mentions") or [])
    return listed or bot_id in _MENTION.findall(str(message.get("content") or ""))


def clean_text(content: str, bot_id: str) -> str:
    """The bot's own mention removed; other mentions stay as Discord wrote them."""
    without = _MENTION.sub(lambda m: "" if m.group(1) == bot_id else m.group(0), content)
    return " ".join(without.split(" ")).strip()


def roles_of(payload: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(r) for r in (payload.get("member") or {}).get("roles") or [])


def is_admin(payload: Mapping[str, Any], access: Access) -> bool:
    return bool(roles_of(payload) & access.admin_roles)


def access_denial(payload: Mapping[str, Any], access: Access, parent_channel: str) -> str | None:
    """None when the author may use the bot here; otherwise what refused it."""
    if is_dm(payload):
        return None if access.dms_allowed else "dm"
    if access.guilds and str(payload.get("guild_id")) not in access.guilds:
        return "guild"
    if access.channels and parent_channel not in access.channels | access.homes:
        return "channel"
    if access.roles and not roles_of(payload) & (access.roles | access.admin_roles):
        return "role"
    return None


def with_role_admin(event: InboundEvent, payload: Mapping[str, Any], access: Access) -> InboundEvent:
    """A member holding one of DISCORD_ADMIN_ROLES is an admin to the orchestrator as well (its
    ADMINS ids stay admins too): the actor carries `platform_admin`."""
    if not is_admin(payload, access):
        return event
    return event.model_copy(update={"actor": event.actor.model_copy(update={"platform_admin": True})})


def admin_only_refused(text: str, payload: Mapping[str, Any], access: Access) -> bool:
    """With admin roles configured, `/cd` and `/config` from anyone else never leave the ingress."""
    head = text.strip().partition(" ")[0].lower()
    return bool(access.admin_roles) and head in ADMIN_WORDS and not is_admin(payload, access)


def place_of(
    message: Mapping[str, Any],
    *,
    bot_id: str,
    our_thread: Mapping[str, Any] | None,
    thread_parent: str | None,
    homes: frozenset[str] = frozenset(),
) -> Place | None:
    """Which session a message belongs to, or None when it is not addressed to us.

    `our_thread`: the record of a session channel we know (its `parent` channel, and `home` for
    a home channel's task thread); `thread_parent`: the channel is some other thread (from the
    gateway cache); `homes`: the workspace home channels."""
    channel = str(message["channel_id"])
    if is_dm(message):
        return Place(channel, channel)
    if channel in homes:  # mention or not, and no task thread: the orchestrator routes it
        return Place(channel, channel, conversation_id=channel, root_message_id=str(message["id"]))
    if our_thread is not None and not our_thread.get("home_channel"):  # (a home no more: mentions only)
        conversation, root = session_coords(channel, our_thread)
        parent = str(our_thread.get("parent") or channel)
        return Place(channel, parent, conversation_id=conversation, root_message_id=root)
    if not mentions_bot(message, bot_id):
        return None
    if thread_parent is not None:  # a mention inside someone else's thread: that thread is the session
        return Place(channel, thread_parent)
    return Place(str(message["id"]), channel, opens_thread=True)


def actor_of(payload: Mapping[str, Any]) -> Actor:
    user = payload.get("author") or (payload.get("member") or {}).get("user") or payload.get("user") or {}
    nick = (payload.get("member") or {}).get("nick")
    name = nick or user.get("global_name") or user.get("username") or str(user.get("id", ""))
    return Actor(id=str(user.get("id", "")), display_name=str(name), is_bot=bool(user.get("bot")))


def attachments_of(message: Mapping[str, Any]) -> list[Attachment]:
    found = []
    for item in message.get("attachments") or []:
        mimetype = str(item.get("content_type") or "")
        found.append(
            Attachment(
                id=str(item.get("id")),
                name=str(item.get("filename") or item.get("id")),
                mimetype=mimetype,
                size=int(item.get("size") or 0),
                url=item.get("url"),
                is_image=mimetype.startswith("image/"),
            )
        )
    return found


def message_event(message: Mapping[str, Any], place: Place, bot_id: str) -> InboundEvent:
    conversation, root = place.coords
    return InboundEvent(
        event_id=event_id_for_message(str(message["id"])),
        platform="discord",
        conversation_id=conversation,
        root_message_id=root,
        message_id=str(message["id"]),
        kind="message",
        actor=actor_of(message),
        text=clean_text(str(message.get("content") or ""), bot_id),
        is_mention=place.opens_thread or mentions_bot(message, bot_id),
        is_direct=is_dm(message),
        attachments=attachments_of(message),
    )


def thread_name(text: str, author: str) -> str:
    flat = " ".join(text.split()) or f"Codex task for {author}"
    return flat if len(flat) <= THREAD_NAME_CHARS else flat[: THREAD_NAME_CHARS - 1] + "…"


# ---- interactions -----------------------------------------------------------------------------------


def custom_id(action: str, value: str) -> str:
    return f"{CUSTOM_ID_PREFIX}{action}:{value}"


def action_from_custom_id(raw: str) -> ActionPayload | None:
    if not raw.startswith(CUSTOM_ID_PREFIX):
        return None
    action, _, value = raw.removeprefix(CUSTOM_ID_PREFIX).partition(":")
    if action in ("stop", "retry"):
        return ActionPayload(action=action, value=value, run_id=value or None)  # type: ignore[arg-type]
    if action in ("approve", "deny"):
        run_id, _, request_id = value.partition(":")
        return ActionPayload(action=action, value=value, run_id=run_id or None, request_id=request_id or None)  # type: ignore[arg-type]
    if action in ("coauthor_open", "open_thread"):
        return ActionPayload(action=action, value=value)  # type: ignore[arg-type]
    return None


def interaction_actor(interaction: Mapping[str, Any]) -> Actor:
    user = (interaction.get("member") or {}).get("user") or interaction.get("user") or {}
    return actor_of({"author": user, "member": interaction.get("member") or {}})


# answered to the presser alone: the click is deferred as an ephemeral reply, as a command is
EPHEMERAL_ACTIONS = frozenset({"open_thread"})


def interaction_coords(
    channel: str, meta: Mapping[str, Any] | None, homes: frozenset[str]
) -> tuple[str, str] | None:
    """The session coordinates of a command or click given in `channel`: a home channel's are
    the channel scope (the orchestrator routes them to its operator session), a session
    channel's its own, any other channel has none."""
    if channel in homes:
        return channel, CHANNEL_SCOPE
    if meta is None or meta.get("home_channel"):
        return None
    return session_coords(channel, meta)


def component_event(
    interaction: Mapping[str, Any], coords: tuple[str, str] | None = None
) -> InboundEvent | None:
    """A press of one of our buttons (Stop, Approve, Deny, Retry, a threads list's Open) in a
    session channel (`coords`: its session coordinates, else the channel's own)."""
    data = interaction.get("data") or {}
    payload = action_from_custom_id(str(data.get("custom_id") or ""))
    channel = str(interaction.get("channel_id") or "")
    message_id = str((interaction.get("message") or {}).get("id") or "")
    if payload is None or not channel or not interaction.get("id"):
        return None
    payload.message_id = message_id or None
    conversation, root = coords or (channel, channel)
    return InboundEvent(
        event_id=event_id_for_interaction(str(interaction["id"])),
        platform="discord",
        conversation_id=conversation,
        root_message_id=root,
        message_id=message_id,
        kind="action",
        actor=interaction_actor(interaction),
        is_direct=is_dm(interaction),
        action=payload,
        reply_ephemeral=payload.action in EPHEMERAL_ACTIONS,
    )


def subcommand_of(interaction: Mapping[str, Any]) -> str | None:
    data = interaction.get("data") or {}
    if data.get("name") != COMMAND_NAME:
        return None
    options: Sequence[Mapping[str, Any]] = data.get("options") or []
    name = str(options[0].get("name")) if options else "help"
    return name if name in SUBCOMMANDS else "help"


def command_event(interaction: Mapping[str, Any], *, coords: tuple[str, str] | None) -> InboundEvent | None:
    """`/codex status` → the orchestrator's `/status` for the session it was given in (`coords`;
    a DM channel is its own session, any other channel outside a session the channel scope),
    answered ephemerally."""
    sub = subcommand_of(interaction)
    channel = str(interaction.get("channel_id") or "")
    if sub is None or not channel or not interaction.get("id"):
        return None
    direct = is_dm(interaction)
    conversation, root = coords or (channel, channel if direct else CHANNEL_SCOPE)
    return InboundEvent(
        event_id=event_id_for_interaction(str(interaction["id"])),
        platform="discord",
        conversation_id=conversation,
        root_message_id=root,
        kind="message",
        actor=interaction_actor(interaction),
        text=f"/{sub}",
        is_mention=True,
        is_direct=direct,
        reply_ephemeral=True,
    )


def command_definition() -> dict[str, Any]:
    """The one global application command, `/codex <status|new|stop|usage|help|threads>`."""
    descriptions = {
        "status": "What is running, queued messages, Codex thread, workspace, tokens",
        "new": "The next message starts a fresh Codex thread",
        "stop": "Interrupt the running turn and drop queued messages",
        "usage": "Tokens used by this session and by you today",
        "help": "What the bot understands",
        "threads": "Workspace mode: the delegated sessions of this home channel",
    }
    return {
        "name": COMMAND_NAME,
        "type": 1,
        "description": "Codex in this thread",
        "options": [{"type": 1, "name": name, "description": descriptions[name]} for name in SUBCOMMANDS],
    }

"""Slack payloads → InboundEvent. Pure: no I/O; display names come in as a mapping.

The handler calls `ignore_reason` first (cheap), then `user_ids_to_resolve` to learn which
display names it must look up, then `to_inbound` with those names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from codex_broker.libs.buttons import SLACK_ACTION_PREFIX
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    ActionPayload,
    Actor,
    Attachment,
    HistoryMessage,
    InboundEvent,
)

# message subtypes that carry something a person said; every other subtype (edits, deletes,
# joins, topic/purpose/name changes, pins, …) is housekeeping and ignored
CONTENT_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
BOT_SUBTYPE = "bot_message"

ACTION_PREFIX = SLACK_ACTION_PREFIX  # the http-api refuses it in blocks Codex posts
COAUTHOR_CALLBACK = "cb_coauthor"
METADATA_KEY = "cb"

_USER_MENTION = re.compile(r"<@([UWB][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_MENTION = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL_MENTION = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_SUBTEAM_MENTION = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class BotIdentity:
    """Who 'we' are in the workspace (from auth.test), and the forwarding policy."""

    user_id: str = ""
    bot_id: str = ""
    app_id: str = ""
    team_id: str = ""
    allow_bots: bool = False
    forward_unmentioned: bool = False


def scrub_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates → U+FFFD, in every string of a payload.

    JSON may carry "\\ud83d" alone (half of a cut emoji); Python reads it, but such a string can
    never be written as UTF-8 (Redis, our contracts), so the event could not be stored at all.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {scrub_surrogates(k): scrub_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_surrogates(v) for v in value]
    return value


def event_id_for(channel: str, ts: str) -> str:
    """One id for one message, whether it came as `message` or as `app_mention`."""
    return f"slack:{channel}:{ts}"


def ignore_reason(event: Mapping[str, Any], me: BotIdentity) -> str | None:
    """Why this message or app_mention event is not forwarded; None if it is."""
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return "not_a_message"
    subtype = event.get("subtype")
    if subtype not in CONTENT_SUBTYPES and subtype != BOT_SUBTYPE:
        return "subtype"
    if not event.get("channel") or not event.get("ts"):
        return "incomplete"
    if _is_self(event, me):
        return "self"
    if _is_bot(event) and not me.allow_bots:
        return "bot"
    if (
        kind == "message"
        and not me.forward_unmentioned
        and event.get("channel_type") != "im"
        and not event.get("thread_ts")
        and not mentions_bot(event.get("text") or "", me)
    ):
        return "unmentioned"
    return None


def _is_self(event: Mapping[str, Any], me: BotIdentity) -> bool:
    return bool(
        (me.user_id and event.get("user") == me.user_id)
        or (me.bot_id and event.get("bot_id") == me.bot_id)
        or (me.app_id and event.get("app_id") == me.app_id)
        or (me.bot_id and (event.get("bot_profile") or {}).get("id") == me.bot_id)
    )


def _is_bot(event: Mapping[str, Any]) -> bool:
    return bool(event.get("bot_id") or event.get("subtype") == BOT_SUBTYPE)


def mentions_bot(text: str, me: BotIdentity) -> bool:
    return bool(me.user_id) and any(m.group(1) == me.user_id for m in _USER_MENTION.finditer(text))


def user_ids_to_resolve(event: Mapping[str, Any], me: BotIdentity) -> list[str]:
    """The actor and every mentioned user (except us), in first-seen order."""
    ids: list[str] = []
    actor = event.get("user")
    if actor:
        ids.append(str(actor))
    for match in _USER_MENTION.finditer(event.get("text") or ""):
        if match.group(1) != me.user_id and match.group(1) not in ids:
            ids.append(match.group(1))
    return ids


def clean_text(text: str, me: BotIdentity, names: Mapping[str, str]) -> str:
    """Slack markup → plain text for Codex: our mention removed, others resolved to @names."""

    def user(match: re.Match[str]) -> str:
        uid = match.group(1)
        if uid == me.user_id:
            return ""
        return "@" + (names.get(uid) or match.group(2) or uid)

    text = _USER_MENTION.sub(user, text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL_MENTION.sub(lambda m: "@" + m.group(1), text)
    text = _SUBTEAM_MENTION.sub(lambda m: m.group(2) or "@" + m.group(1), text)
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(_link, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _link(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2)
    if url.startswith("mailto:") and label:
        return label
    if not label or label == url or url.endswith(label):
        return url
    return f"{label} ({url})"


def attachments_of(event: Mapping[str, Any]) -> list[Attachment]:
    found = []
    for raw in event.get("files") or []:
        if not isinstance(raw, Mapping) or not raw.get("id") or raw.get("mode") == "tombstone":
            continue
        mimetype = str(raw.get("mimetype") or "")
        found.append(
            Attachment(
                id=str(raw["id"]),
                name=str(raw.get("name") or raw.get("title") or raw["id"]),
                mimetype=mimetype,
                size=int(raw.get("size") or 0),
                url=raw.get("url_private_download") or raw.get("url_private"),
                is_image=mimetype.startswith("image/"),
            )
        )
    return found


def actor_of(user_id: str, names: Mapping[str, str], *, is_bot: bool = False) -> Actor:
    return Actor(id=user_id, display_name=names.get(user_id) or user_id, is_bot=is_bot)


def to_inbound(event: Mapping[str, Any], me: BotIdentity, names: Mapping[str, str]) -> InboundEvent | None:
    """A `message` / `app_mention` event as an InboundEvent, or None when it is ignored."""
    if ignore_reason(event, me) is not None:
        return None
    channel, ts = str(event["channel"]), str(event["ts"])
    raw_text = event.get("text") or ""
    actor_id = str(event.get("user") or event.get("bot_id") or "unknown")
    return InboundEvent(
        event_id=event_id_for(channel, ts),
        platform="slack",
        conversation_id=channel,
        root_message_id=str(event.get("thread_ts") or ts),
        message_id=ts,
        kind="message",
        actor=actor_of(actor_id, names, is_bot=_is_bot(event)),
        text=clean_text(raw_text, me, names),
        is_mention=event.get("type") == "app_mention" or mentions_bot(raw_text, me),
        is_direct=event.get("channel_type") == "im" or channel.startswith("D"),
        attachments=attachments_of(event),
    )


# ---- interactivity ------------------------------------------------------------------------------


def action_from_button(action_id: str, value: str) -> ActionPayload:
    """Our button ids are `cb_<action>`; values follow INTERFACES.md (run_id, run_id:request_id)."""
    name = action_id.removeprefix(ACTION_PREFIX)
    if name in ("stop", "retry"):
        return ActionPayload(action=name, value=value, run_id=value or None)  # type: ignore[arg-type]
    if name in ("approve", "deny"):
        run_id, _, request_id = value.partition(":")
        return ActionPayload(action=name, value=value, run_id=run_id or None, request_id=request_id or None)  # type: ignore[arg-type]
    if name in ("coauthor_open", "open_thread"):
        return ActionPayload(action=name, value=value)  # type: ignore[arg-type]
    return ActionPayload(action="other", value=value, values={"action_id": action_id})


def block_action_to_inbound(body: Mapping[str, Any], names: Mapping[str, str]) -> InboundEvent | None:
    """A block_actions payload for one of our buttons; None for anything else."""
    actions = [a for a in body.get("actions") or [] if str(a.get("action_id", "")).startswith(ACTION_PREFIX)]
    if not actions:
        return None
    first = actions[0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    message_ts = message.get("ts") or container.get("message_ts")
    root = message.get("thread_ts") or container.get("thread_ts") or message_ts
    user = body.get("user") or {}
    if not channel or not root or not user.get("id"):
        return None
    payload = action_from_button(str(first["action_id"]), str(first.get("value") or ""))
    payload.message_id = message_ts
    payload.trigger_id = body.get("trigger_id")
    dedup = first.get("action_ts") or body.get("trigger_id") or f"{message_ts}:{first['action_id']}"
    return InboundEvent(
        event_id=f"slack-action:{dedup}",
        platform="slack",
        conversation_id=str(channel),
        root_message_id=str(root),
        message_id=str(message_ts or ""),
        kind="action",
        actor=_interactive_actor(user, names),
        is_direct=str(channel).startswith("D"),
        action=payload,
    )


def view_submission_to_inbound(body: Mapping[str, Any], names: Mapping[str, str]) -> InboundEvent | None:
    """A submitted modal that we opened (its private_metadata carries the thread)."""
    view = body.get("view") or {}
    coords, _ = unwrap_view_metadata(str(view.get("private_metadata") or ""))
    user = body.get("user") or {}
    if coords is None or not user.get("id"):
        return None
    callback = str(view.get("callback_id") or "")
    values = view_values(view)
    action = "coauthor_submit" if callback == COAUTHOR_CALLBACK else "other"
    dedup = body.get("trigger_id") or f"{view.get('id')}:{view.get('hash')}"
    return InboundEvent(
        event_id=f"slack-action:{dedup}",
        platform="slack",
        conversation_id=coords["conversation_id"],
        root_message_id=coords["root_message_id"],
        kind="action",
        actor=_interactive_actor(user, names),
        action=ActionPayload(
            action=action,  # type: ignore[arg-type]
            value=callback,
            trigger_id=body.get("trigger_id"),
            values=values,
        ),
    )


SLASH_COMMAND = "/codex"


def slash_command_to_inbound(body: Mapping[str, Any], names: Mapping[str, str]) -> InboundEvent | None:
    """`/codex status` → the orchestrator's `/status` command for the thread Slack names (else
    the channel), answered ephemerally. `/codex` alone asks for help."""
    channel, user_id, trigger = body.get("channel_id"), body.get("user_id"), body.get("trigger_id")
    if body.get("command") != SLASH_COMMAND or not channel or not user_id or not trigger:
        return None
    words = str(body.get("text") or "").strip()
    thread = str(body.get("thread_ts") or "")
    uid = str(user_id)
    return InboundEvent(
        event_id=f"slack-command:{trigger}",
        platform="slack",
        conversation_id=str(channel),
        root_message_id=thread or CHANNEL_SCOPE,
        kind="message",
        actor=Actor(id=uid, display_name=names.get(uid) or str(body.get("user_name") or uid)),
        text="/" + (words or "help"),
        is_mention=True,  # addressed to the bot, like a mention
        is_direct=str(channel).startswith("D"),
        reply_ephemeral=True,
    )


def _interactive_actor(user: Mapping[str, Any], names: Mapping[str, str]) -> Actor:
    uid = str(user["id"])
    fallback = user.get("name") or user.get("username") or uid
    return Actor(id=uid, display_name=names.get(uid) or str(fallback))


def view_values(view: Mapping[str, Any]) -> dict[str, Any]:
    """state.values flattened to {action_id: value} (text, selects, checkboxes, dates)."""
    flat: dict[str, Any] = {}
    blocks = ((view.get("state") or {}).get("values")) or {}
    for block in blocks.values():
        for action_id, element in (block or {}).items():
            flat[action_id] = _element_value(element or {})
    return flat


def _element_value(element: Mapping[str, Any]) -> Any:
    for key in ("value", "selected_date", "selected_time", "selected_user", "selected_channel"):
        if element.get(key) is not None:
            return element[key]
    if element.get("selected_option") is not None:
        return element["selected_option"].get("value")
    if element.get("selected_options") is not None:
        return [o.get("value") for o in element["selected_options"]]
    return None


def wrap_view_metadata(conversation_id: str, root_message_id: str, original: str = "") -> str:
    """private_metadata of a modal we open: the thread it belongs to plus the sender's own."""
    return json.dumps(
        {
            METADATA_KEY: {"conversation_id": conversation_id, "root_message_id": root_message_id},
            "m": original,
        }
    )


def unwrap_view_metadata(raw: str) -> tuple[dict[str, str] | None, str]:
    try:
        data = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None, raw
    if not isinstance(data, dict) or not isinstance(data.get(METADATA_KEY), dict):
        return None, raw
    coords = data[METADATA_KEY]
    if not coords.get("conversation_id") or not coords.get("root_message_id"):
        return None, raw
    return {k: str(coords[k]) for k in ("conversation_id", "root_message_id")}, str(data.get("m") or "")


# ---- history --------------------------------------------------------------------------------------


def ts_key(ts: str) -> Decimal:
    try:
        return Decimal(ts)
    except (InvalidOperation, ValueError):
        return Decimal(0)


def select_history(
    messages: Sequence[Mapping[str, Any]], before: str | None, limit: int
) -> list[Mapping[str, Any]]:
    """Unique messages strictly before `before`, oldest first, the newest `limit` of them."""
    seen: dict[str, Mapping[str, Any]] = {}
    cutoff = ts_key(before) if before else None
    for message in messages:
        ts = str(message.get("ts") or "")
        if not ts or (cutoff is not None and ts_key(ts) >= cutoff):
            continue
        seen.setdefault(ts, message)
    ordered = sorted(seen.values(), key=lambda m: ts_key(str(m["ts"])))
    return ordered[-limit:] if limit > 0 else []


def history_user_ids(messages: Sequence[Mapping[str, Any]], me: BotIdentity) -> list[str]:
    ids: list[str] = []
    for message in messages:
        if message.get("bot_id") and not message.get("user"):
            continue
        for uid in user_ids_to_resolve({**message, "type": "message"}, me):
            if uid not in ids:
                ids.append(uid)
    return ids


def to_history_message(
    message: Mapping[str, Any], me: BotIdentity, names: Mapping[str, str]
) -> HistoryMessage:
    ts = str(message["ts"])
    is_bot = _is_bot(message) or _is_self(message, me)
    actor_id = str(message.get("user") or message.get("bot_id") or "unknown")
    bot_name = (message.get("bot_profile") or {}).get("name") or message.get("username")
    display = names.get(actor_id) or (str(bot_name) if bot_name else actor_id)
    return HistoryMessage(
        message_id=ts,
        actor=Actor(id=actor_id, display_name=display, is_bot=is_bot),
        text=clean_text(str(message.get("text") or ""), me, names),
        ts=datetime.fromtimestamp(float(ts_key(ts)), UTC),
        attachments=attachments_of(message),
    )

"""Feishu event payloads (plain dicts) → `InboundEvent`, or a reason to ignore them. Pure.

Scopes: a group thread is the conversation (chat_id) plus the thread's root message
(`root_id`, or the message itself when it starts the thread); topic groups behave the same,
one scope per topic. A private chat is one scope: root_message_id = chat_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from codex_broker.ingress_feishu.content import parse_content, parse_mentions, replace_mentions
from codex_broker.ingress_feishu.render import BUTTON_ACTION_FIELD, decode_button_value
from codex_broker.libs.contracts import ActionPayload, Actor, HistoryMessage, InboundEvent

GroupMode = Literal["all", "at_only"]


@dataclass(frozen=True)
class InboundPolicy:
    bot_open_id: str
    group_mode: GroupMode = "all"
    p2p_enabled: bool = True


@dataclass(frozen=True)
class Ignored:
    reason: str  # bounded vocabulary: used as a metric label


Normalized = InboundEvent | Ignored


def message_event_id(message_id: str) -> str:
    return f"feishu:{message_id}"


def action_event_id(event_id: str) -> str:
    return f"feishu-action:{event_id}"


def message_to_inbound(payload: dict[str, Any], policy: InboundPolicy) -> Normalized:
    """One `im.message.receive_v1` event (the whole v2 envelope)."""
    event = payload.get("event") or {}
    message = event.get("message") or {}
    sender = event.get("sender") or {}
    message_id = str(message.get("message_id") or "")
    chat_id = str(message.get("chat_id") or "")
    if not message_id or not chat_id:
        return Ignored("malformed")
    sender_open_id = str((sender.get("sender_id") or {}).get("open_id") or "")
    is_bot = sender.get("sender_type") not in (None, "", "user")
    if policy.bot_open_id and sender_open_id == policy.bot_open_id:
        return Ignored("own_message")
    mentions = parse_mentions(message.get("mentions"))
    mentioned = bool(policy.bot_open_id) and any(m.open_id == policy.bot_open_id for m in mentions)
    is_direct = message.get("chat_type") == "p2p"
    root_id = str(message.get("root_id") or "")

    if is_direct:
        if not policy.p2p_enabled:
            return Ignored("p2p_disabled")
        root = chat_id
    elif mentioned:
        root = root_id or message_id
    elif not root_id:
        return Ignored("not_addressed")
    elif policy.group_mode == "at_only":
        return Ignored("at_only")
    else:
        # a plain reply in a thread: the orchestrator continues it only when the thread has a session
        root = root_id

    content = parse_content(
        str(message.get("message_type") or ""), str(message.get("content") or ""), message_id
    )
    text = replace_mentions(content.text, mentions, policy.bot_open_id)
    return InboundEvent(
        event_id=message_event_id(message_id),
        platform="feishu",
        conversation_id=chat_id,
        root_message_id=root,
        message_id=message_id,
        kind="message",
        actor=Actor(id=sender_open_id or "unknown", is_bot=is_bot),
        text=text,
        is_mention=mentioned,
        is_direct=is_direct,
        attachments=content.attachments,
        received_at=_ms_to_datetime(message.get("create_time")),
    )


def card_action_to_inbound(payload: dict[str, Any]) -> Normalized:
    """A `card.action.trigger` callback for one of our buttons (Stop, Approve, Deny, co-authors)."""
    header = payload.get("header") or {}
    event = payload.get("event") or {}
    action = event.get("action") or {}
    context = event.get("context") or {}
    value = action.get("value") or {}
    if not isinstance(value, dict) or BUTTON_ACTION_FIELD not in value:
        return Ignored("foreign_button")
    button = decode_button_value(value)
    if button is None:
        return Ignored("malformed")
    operator = str((event.get("operator") or {}).get("open_id") or "")
    chat_id = str(context.get("open_chat_id") or button.conversation_id)
    trigger = str(header.get("event_id") or event.get("token") or "")
    if not operator or not chat_id or not trigger:
        return Ignored("malformed")
    run_id, request_id = _split_run_value(button.action, button.value)
    return InboundEvent(
        event_id=action_event_id(trigger),
        platform="feishu",
        conversation_id=chat_id,
        root_message_id=button.root_message_id,
        message_id=str(context.get("open_message_id") or ""),
        kind="action",
        actor=Actor(id=operator),
        action=ActionPayload(
            action=button.action,
            value=button.value,
            run_id=run_id,
            request_id=request_id,
            message_id=str(context.get("open_message_id") or "") or None,
            # the co-author form's submit button sends the form's fields along
            values=_form_values(action.get("form_value")),
        ),
        received_at=_ms_to_datetime(header.get("create_time")),
    )


def _form_values(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str | list | bool | int)}


def _split_run_value(action: str, value: str) -> tuple[str | None, str | None]:
    """Stop and Retry carry the run id; Approve/Deny carry "<run_id>:<request_id>"."""
    if action in ("stop", "retry"):
        return (value or None), None
    if action in ("approve", "deny") and ":" in value:
        run_id, request_id = value.split(":", 1)
        return run_id or None, request_id or None
    return None, None


def _ms_to_datetime(raw: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


# ---- history (conversations read back for a run) -------------------------------------------------


def to_history_message(item: dict[str, Any], bot_open_id: str) -> HistoryMessage:
    sender = item.get("sender") or {}
    body = item.get("body") or {}
    message_id = str(item.get("message_id") or "")
    content = parse_content(str(item.get("msg_type") or ""), str(body.get("content") or ""), message_id)
    sender_id = str(sender.get("id") or "unknown")
    return HistoryMessage(
        message_id=message_id,
        actor=Actor(
            id=sender_id,
            display_name=str(sender.get("sender_name") or ""),
            is_bot=sender.get("sender_type") not in (None, "", "user"),
        ),
        text=replace_mentions(content.text, parse_mentions(item.get("mentions")), bot_open_id),
        ts=_ms(item.get("create_time")),
        attachments=content.attachments,
    )


def select_history(
    items_newest_first: list[dict[str, Any]], *, before: str | None, limit: int, root: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Pure paging rule: skip up to and including `before`, keep the thread's messages, stop at
    `limit`. Returns (kept newest first, whether `before` has been passed)."""
    kept: list[dict[str, Any]] = []
    passed = before is None
    for item in items_newest_first:
        if item.get("deleted"):
            continue
        message_id = item.get("message_id")
        if not passed:
            passed = message_id == before
            continue
        if root is not None and message_id != root and item.get("root_id") != root:
            continue
        kept.append(item)
        if len(kept) >= limit:
            break
    return kept, passed


def _ms(raw: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None

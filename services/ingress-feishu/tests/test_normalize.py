"""Feishu event envelopes → InboundEvent: scoping, mentions, modes, content types, card clicks."""

from __future__ import annotations

import json
from typing import Any

from codex_broker.ingress_feishu.normalize import (
    Ignored,
    InboundPolicy,
    card_action_to_inbound,
    message_to_inbound,
)
from codex_broker.libs.contracts import InboundEvent

BOT = "ou_bot"
POLICY = InboundPolicy(bot_open_id=BOT)


def envelope(
    *,
    text: str = "hi",
    chat_type: str = "group",
    root_id: str = "",
    mention_bot: bool = False,
    sender: str = "ou_alice",
    sender_type: str = "user",
    message_type: str = "text",
    content: dict[str, Any] | None = None,
    mentions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    all_mentions = list(mentions or [])
    if mention_bot:
        all_mentions.append({"key": "@_user_9", "id": {"open_id": BOT}, "name": "Codex"})
        text = f"@_user_9 {text}"
    return {
        "schema": "2.0",
        "header": {"event_id": "ev1", "event_type": "im.message.receive_v1", "create_time": "1700000000000"},
        "event": {
            "sender": {"sender_id": {"open_id": sender}, "sender_type": sender_type},
            "message": {
                "message_id": "om_msg",
                "root_id": root_id,
                "chat_id": "oc_chat",
                "chat_type": chat_type,
                "message_type": message_type,
                "content": json.dumps(content if content is not None else {"text": text}),
                "mentions": all_mentions,
                "create_time": "1700000000123",
            },
        },
    }


def as_event(result: InboundEvent | Ignored) -> InboundEvent:
    assert isinstance(result, InboundEvent), result
    return result


def test_group_mention_starts_a_thread_at_the_message() -> None:
    event = as_event(message_to_inbound(envelope(text="fix it", mention_bot=True), POLICY))
    assert (event.conversation_id, event.root_message_id, event.message_id) == ("oc_chat", "om_msg", "om_msg")
    assert event.event_id == "feishu:om_msg"
    assert event.is_mention and not event.is_direct
    assert event.text == "fix it"
    assert event.received_at.timestamp() == 1700000000.123


def test_group_mention_in_a_thread_uses_the_root() -> None:
    event = as_event(message_to_inbound(envelope(mention_bot=True, root_id="om_root"), POLICY))
    assert event.root_message_id == "om_root"


def test_group_message_not_addressed_is_ignored() -> None:
    assert message_to_inbound(envelope(), POLICY) == Ignored("not_addressed")


def test_thread_reply_without_mention_depends_on_mode() -> None:
    forwarded = as_event(message_to_inbound(envelope(root_id="om_root"), POLICY))
    assert forwarded.root_message_id == "om_root" and not forwarded.is_mention
    at_only = InboundPolicy(bot_open_id=BOT, group_mode="at_only")
    assert message_to_inbound(envelope(root_id="om_root"), at_only) == Ignored("at_only")


def test_private_chat_is_scoped_to_the_chat() -> None:
    event = as_event(message_to_inbound(envelope(chat_type="p2p", root_id="om_x"), POLICY))
    assert event.root_message_id == "oc_chat" and event.is_direct
    disabled = InboundPolicy(bot_open_id=BOT, p2p_enabled=False)
    assert message_to_inbound(envelope(chat_type="p2p"), disabled) == Ignored("p2p_disabled")


def test_own_messages_are_ignored_and_other_bots_are_marked() -> None:
    assert message_to_inbound(envelope(sender=BOT, sender_type="app", mention_bot=True), POLICY) == Ignored(
        "own_message"
    )
    other = as_event(
        message_to_inbound(envelope(sender="ou_other", sender_type="app", mention_bot=True), POLICY)
    )
    assert other.actor.is_bot


def test_other_mentions_become_readable_names() -> None:
    mentions = [
        {"key": "@_user_1", "id": {"open_id": "ou_bob"}, "name": "Bob"},
        {"key": "@_user_10", "id": {"open_id": "ou_carol"}, "name": "Carol"},
    ]
    event = as_event(
        message_to_inbound(
            envelope(text="ask @_user_1 and @_user_10", mention_bot=True, mentions=mentions), POLICY
        )
    )
    assert event.text == "ask @Bob and @Carol"


def test_post_image_and_file_content() -> None:
    post = {
        "title": "T",
        "content": [
            [{"tag": "text", "text": "line "}, {"tag": "a", "href": "https://x.y", "text": "link"}],
            [{"tag": "code_block", "language": "Python", "text": "print(1)"}],
            [{"tag": "img", "image_key": "img_1"}],
        ],
    }
    event = as_event(
        message_to_inbound(envelope(message_type="post", content=post, mention_bot=True), POLICY)
    )
    assert event.text == "T\nline [link](https://x.y)\n```python\nprint(1)\n```"
    assert [(a.id, a.is_image) for a in event.attachments] == [("img_1", True)]

    localized = {"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "hello"}]]}}
    assert (
        as_event(
            message_to_inbound(envelope(message_type="post", content=localized, mention_bot=True), POLICY)
        ).text
        == "hello"
    )

    file_event = as_event(
        message_to_inbound(
            envelope(
                message_type="file", content={"file_key": "file_1", "file_name": "a.log"}, mention_bot=True
            ),
            POLICY,
        )
    )
    [attachment] = file_event.attachments
    assert attachment.name == "a.log" and not attachment.is_image
    assert attachment.url == "feishu://message/om_msg/resource/file_1?type=file"


def test_unknown_message_type_keeps_a_placeholder() -> None:
    event = as_event(
        message_to_inbound(
            envelope(message_type="sticker", content={"file_key": "s"}, mention_bot=True), POLICY
        )
    )
    assert event.text == "[sticker message]"


def test_malformed_message_is_ignored() -> None:
    assert message_to_inbound({"event": {}}, POLICY) == Ignored("malformed")


def card(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "header": {
            "event_id": "ev_click",
            "event_type": "card.action.trigger",
            "create_time": "1700000000000",
        },
        "event": {
            "operator": {"open_id": "ou_clicker"},
            "token": "c-1",
            "action": {"value": value, "tag": "button"},
            "context": {"open_message_id": "om_card", "open_chat_id": "oc_chat"},
        },
    }


def test_stop_click() -> None:
    event = as_event(
        card_action_to_inbound(card({"cb": "stop", "v": "run-1", "root": "om_root", "conv": "oc_chat"}))
    )
    assert event.kind == "action" and event.event_id == "feishu-action:ev_click"
    assert event.root_message_id == "om_root" and event.actor.id == "ou_clicker"
    assert event.action is not None
    assert (event.action.action, event.action.run_id, event.action.message_id) == ("stop", "run-1", "om_card")


def test_retry_click_carries_the_lost_run() -> None:
    event = as_event(card_action_to_inbound(card({"cb": "retry", "v": "run-9", "root": "om_root"})))
    assert event.action is not None
    assert (event.action.action, event.action.run_id) == ("retry", "run-9")


def test_approve_and_deny_carry_run_and_request() -> None:
    for verb in ("approve", "deny"):
        event = as_event(card_action_to_inbound(card({"cb": verb, "v": "run-1:req-7", "root": "om_root"})))
        assert event.action is not None
        assert (event.action.action, event.action.run_id, event.action.request_id) == (verb, "run-1", "req-7")


def test_foreign_or_broken_buttons_are_ignored() -> None:
    assert card_action_to_inbound(card({"other": "x"})) == Ignored("foreign_button")
    assert card_action_to_inbound(card({"cb": "launch", "root": "om_root"})) == Ignored("malformed")
    assert card_action_to_inbound(card({"cb": "stop", "v": "r"})) == Ignored("malformed")


def test_coauthor_form_submission_carries_the_form_fields() -> None:
    payload = card({"cb": "coauthor_submit", "v": "", "root": "om_root", "conv": "oc_chat"})
    payload["event"]["action"]["form_value"] = {
        "coauthors": ["ou_a", "ou_b"],
        "github_email": "me@example.com",
        "allow_missing": True,
    }
    event = as_event(card_action_to_inbound(payload))
    assert event.action is not None and event.action.action == "coauthor_submit"
    assert event.action.values == {
        "coauthors": ["ou_a", "ou_b"],
        "github_email": "me@example.com",
        "allow_missing": True,
    }


def test_a_threads_list_open_click_reaches_the_orchestrator() -> None:
    """Workspace mode's `threads` list carries an Open button per delegation on every platform."""
    event = as_event(card_action_to_inbound(card({"cb": "open_thread", "v": "d-3", "root": "om_root"})))
    assert event.action is not None
    assert (event.action.action, event.action.value) == ("open_thread", "d-3")

"""Slack payloads → InboundEvent / HistoryMessage, without a network."""

from __future__ import annotations

from codex_broker.ingress_slack.normalize import (
    BotIdentity,
    action_from_button,
    block_action_to_inbound,
    clean_text,
    ignore_reason,
    select_history,
    to_history_message,
    to_inbound,
    user_ids_to_resolve,
    view_submission_to_inbound,
    wrap_view_metadata,
)

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", app_id="AAPP", team_id="T1")
NAMES = {"U1": "Alice", "U2": "Bob"}


def message(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "message",
        "channel": "C1",
        "user": "U1",
        "text": "hello",
        "ts": "1700000000.000100",
        "channel_type": "channel",
    }
    base.update(fields)
    return base


def test_mention_becomes_event_with_mention_stripped_and_names_resolved() -> None:
    event = to_inbound(message(type="app_mention", text="<@UBOT> ask <@U2> about it"), ME, NAMES)
    assert event is not None
    assert event.event_id == "slack:C1:1700000000.000100"
    assert (event.conversation_id, event.root_message_id, event.message_id) == (
        "C1",
        "1700000000.000100",
        "1700000000.000100",
    )
    assert event.text == "ask @Bob about it"
    assert event.is_mention and not event.is_direct
    assert event.actor.id == "U1" and event.actor.display_name == "Alice"


def test_app_mention_and_message_of_one_message_share_the_event_id() -> None:
    as_message = to_inbound(message(text="<@UBOT> hi"), ME, NAMES)
    as_mention = to_inbound(message(type="app_mention", text="<@UBOT> hi"), ME, NAMES)
    assert as_message is not None and as_mention is not None
    assert as_message.event_id == as_mention.event_id
    assert as_message.is_mention and as_mention.is_mention


def test_thread_reply_keeps_the_thread_root() -> None:
    event = to_inbound(message(text="more", ts="1700000005.000200", thread_ts="1700000000.000100"), ME, NAMES)
    assert event is not None
    assert event.root_message_id == "1700000000.000100"
    assert event.message_id == "1700000005.000200"
    assert not event.is_mention


def test_direct_message_needs_no_mention() -> None:
    event = to_inbound(message(channel="D9", channel_type="im", text="fix it"), ME, NAMES)
    assert event is not None and event.is_direct and not event.is_mention


def test_top_level_channel_chatter_is_not_forwarded_unless_configured() -> None:
    assert ignore_reason(message(), ME) == "unmentioned"
    open_me = BotIdentity(user_id="UBOT", forward_unmentioned=True)
    assert ignore_reason(message(), open_me) is None


def test_own_messages_are_ignored_by_user_bot_and_app_id() -> None:
    assert ignore_reason(message(user="UBOT", thread_ts="1"), ME) == "self"
    assert (
        ignore_reason(message(user=None, bot_id="BBOT", subtype="bot_message", thread_ts="1"), ME) == "self"
    )
    assert ignore_reason(message(user="UX", app_id="AAPP", thread_ts="1"), ME) == "self"


def test_other_bots_only_when_allowed() -> None:
    other = message(user=None, bot_id="BOTHER", subtype="bot_message", thread_ts="1")
    assert ignore_reason(other, ME) == "bot"
    assert ignore_reason(other, BotIdentity(user_id="UBOT", allow_bots=True)) is None


def test_housekeeping_subtypes_are_ignored_and_content_subtypes_kept() -> None:
    for subtype in ("message_changed", "message_deleted", "channel_join", "channel_topic", "channel_name"):
        assert ignore_reason(message(subtype=subtype, thread_ts="1"), ME) == "subtype"
    for subtype in ("file_share", "thread_broadcast", "me_message"):
        assert ignore_reason(message(subtype=subtype, thread_ts="1"), ME) is None


def test_files_become_attachment_refs() -> None:
    files = [
        {
            "id": "F1",
            "name": "shot.png",
            "mimetype": "image/png",
            "size": 10,
            "url_private": "https://files.slack.com/a",
            "url_private_download": "https://files.slack.com/a?d=1",
        },
        {"id": "F2", "name": "log.txt", "mimetype": "text/plain", "size": 3, "url_private": "https://f/b"},
        {"id": "F3", "mode": "tombstone"},
    ]
    event = to_inbound(message(subtype="file_share", files=files, text="<@UBOT> look"), ME, NAMES)
    assert event is not None
    assert [(a.id, a.is_image, a.url) for a in event.attachments] == [
        ("F1", True, "https://files.slack.com/a?d=1"),
        ("F2", False, "https://f/b"),
    ]


def test_clean_text_resolves_slack_markup() -> None:
    text = (
        "<@UBOT> see <#C2|general>, <!here>, <https://x.y/z|the doc>, <https://a.b> "
        "and <mailto:a@b.c|a@b.c>: 1 &lt; 2 &amp;&amp; 3 &gt; 2"
    )
    assert clean_text(text, ME, NAMES) == (
        "see #general, @here, the doc (https://x.y/z), https://a.b and a@b.c: 1 < 2 && 3 > 2"
    )


def test_user_ids_to_resolve_lists_actor_and_mentions_but_not_us() -> None:
    assert user_ids_to_resolve(message(text="<@UBOT> <@U2> <@U1> <@U2>"), ME) == ["U1", "U2"]


def _action_body(action_id: str, value: str) -> dict[str, object]:
    return {
        "type": "block_actions",
        "user": {"id": "U2", "username": "bob"},
        "channel": {"id": "C1"},
        "container": {"message_ts": "1700000009.000100", "channel_id": "C1"},
        "message": {"ts": "1700000009.000100", "thread_ts": "1700000000.000100"},
        "trigger_id": "T.1",
        "actions": [{"action_id": action_id, "value": value, "action_ts": "1700000010.1"}],
    }


def test_stop_button_becomes_an_action_event_for_the_thread() -> None:
    event = block_action_to_inbound(_action_body("cb_stop", "run-1"), NAMES)
    assert event is not None
    assert event.kind == "action" and event.event_id == "slack-action:1700000010.1"
    assert event.root_message_id == "1700000000.000100"
    assert event.action is not None and event.action.action == "stop" and event.action.run_id == "run-1"
    assert event.actor.display_name == "Bob"


def test_approve_button_carries_run_and_request() -> None:
    event = block_action_to_inbound(_action_body("cb_approve", "run-1:req-7"), NAMES)
    assert event is not None and event.action is not None
    assert (event.action.action, event.action.run_id, event.action.request_id) == (
        "approve",
        "run-1",
        "req-7",
    )


def test_foreign_buttons_are_not_ours() -> None:
    assert block_action_to_inbound(_action_body("someone_elses", "x"), NAMES) is None


def test_coauthor_view_submission_uses_the_metadata_we_wrapped() -> None:
    view = {
        "id": "V1",
        "callback_id": "cb_coauthor",
        "private_metadata": wrap_view_metadata("C1", "1700000000.000100", "orig"),
        "state": {
            "values": {
                "b1": {"name": {"type": "plain_text_input", "value": "Alice A"}},
                "b2": {"email": {"type": "plain_text_input", "value": "a@example.com"}},
            }
        },
    }
    event = view_submission_to_inbound({"user": {"id": "U1"}, "view": view, "trigger_id": "T.2"}, NAMES)
    assert event is not None and event.action is not None
    assert event.action.action == "coauthor_submit"
    assert event.action.values == {"name": "Alice A", "email": "a@example.com"}
    assert (event.conversation_id, event.root_message_id) == ("C1", "1700000000.000100")
    assert (
        view_submission_to_inbound({"user": {"id": "U1"}, "view": {"private_metadata": "x"}}, NAMES) is None
    )


def test_select_history_is_before_exclusive_oldest_first_and_limited() -> None:
    messages = [{"ts": f"17000000{i:02d}.000100"} for i in (5, 1, 3, 2, 4, 3)]
    picked = select_history(messages, "1700000004.000100", 2)
    assert [m["ts"] for m in picked] == ["1700000002.000100", "1700000003.000100"]
    assert len(select_history(messages, None, 100)) == 5


def test_history_message_names_and_bots() -> None:
    human = to_history_message(
        {"ts": "1700000000.000100", "user": "U1", "text": "<@UBOT> hi <@U2>"}, ME, NAMES
    )
    assert human.actor.display_name == "Alice" and human.text == "hi @Bob" and not human.actor.is_bot
    bot = to_history_message(
        {
            "ts": "1700000001.000100",
            "bot_id": "BBOT",
            "user": "UBOT",
            "text": "done",
            "bot_profile": {"name": "codex"},
        },
        ME,
        NAMES,
    )
    assert bot.actor.is_bot and bot.actor.display_name == "codex"
    assert human.ts is not None and human.ts.year == 2023


def test_retry_button_names_the_lost_run() -> None:
    payload = action_from_button("cb_retry", "run-9")
    assert (payload.action, payload.run_id, payload.value) == ("retry", "run-9", "run-9")

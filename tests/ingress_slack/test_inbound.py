"""Inbound: real slack-bolt Socket Mode against the fake Slack, InboundEvents in real Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
from redis.asyncio import Redis

from codex_broker.libs.contracts import CHANNEL_SCOPE
from codex_broker.libs.keys import Keys
from tests.fakes.fake_slack import FakeSlack
from tests.helpers import free_port, wait_for
from tests.ingress_slack.conftest import StartIngress
from tests.ingress_slack.support import CHANNEL, action, inbound_entries, inbound_events, publish
from tests.ingress_slack.tcp_proxy import TcpProxy


async def test_mention_is_stored_before_it_is_acked(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    sent = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> please fix <@U2>'s test")
    assert len(sent.event_ids) == 2  # Slack sends the message event and app_mention

    for event_id in sent.event_ids:
        await wait_for(lambda e=event_id: slack.acked(e), what=f"ack of {event_id}")
    entries = await inbound_entries(redis, keys)
    assert len(entries) == 1, "app_mention and message of one message collapse into one event"
    entry_id, event = entries[0]
    assert event.event_id == f"slack:{CHANNEL}:{sent.ts}"
    assert event.text == "please fix @Bob's test"
    assert event.is_mention and event.actor.display_name == "Alice"
    assert (event.conversation_id, event.root_message_id) == (CHANNEL, sent.ts)
    # the XADD (entry id = Redis ms clock) happened no later than the first ack
    first_ack = min(e["acked_at"] for eid in sent.event_ids for e in slack.envelopes(eid) if e["acked"])
    assert int(entry_id.split("-")[0]) <= first_ack * 1000 + 1


async def test_redis_down_means_no_ack_then_one_event_after_slack_resends(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys, redis_url: str
) -> None:
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    proxy = await TcpProxy(host or "127.0.0.1", int(port or 6379)).start()
    try:
        await start_ingress(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        await proxy.down()
        sent = slack.user_message("D0DM", "U1", "are you there?", channel_type="im")
        event_id = sent.event_ids[0]
        await wait_for(lambda: slack.deliveries(event_id) >= 2, timeout_s=20, what="Slack re-sending")
        assert not slack.acked(event_id)
        assert await inbound_events(redis, keys) == []

        await proxy.up()
        await wait_for(lambda: slack.acked(event_id), timeout_s=30, what="ack once Redis is back")
        events = await inbound_events(redis, keys)
        assert [e.event_id for e in events] == [f"slack:D0DM:{sent.ts}"]
        acked = [e for e in slack.envelopes(event_id) if e["acked"]]
        assert len(acked) == 1 and acked[0]["attempt"] >= 1
    finally:
        await proxy.close()


async def test_three_retries_give_one_event(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    sent = slack.user_message("D0DM", "U1", "hello", channel_type="im")
    event_id = sent.event_ids[0]
    await wait_for(lambda: slack.acked(event_id), what="first ack")
    for _ in range(3):  # Slack missed our acks and retries, retry_attempt 1..3
        slack.resend(event_id)
    await wait_for(
        lambda: [e["acked"] for e in slack.envelopes(event_id)] == [True] * 4, what="every retry acked"
    )
    assert [e["attempt"] for e in slack.envelopes(event_id)] == [0, 1, 2, 3]
    events = await inbound_events(redis, keys)
    assert [e.event_id for e in events] == [f"slack:D0DM:{sent.ts}"]


async def test_direct_message_and_thread_reply(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    dm = slack.user_message("D0DM", "U2", "check the build", channel_type="im")
    root = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> start")
    reply = slack.user_message(CHANNEL, "U2", "and also this", thread_ts=root.ts)
    chatter = slack.user_message(CHANNEL, "U2", "lunch?")  # top level, no mention: not for us
    for event_id in [*dm.event_ids, *root.event_ids, *reply.event_ids, *chatter.event_ids]:
        await wait_for(lambda e=event_id: slack.acked(e), what=f"ack of {event_id}")

    events = {e.message_id: e for e in await inbound_events(redis, keys)}
    assert set(events) == {dm.ts, root.ts, reply.ts}
    assert events[dm.ts].is_direct and events[dm.ts].actor.display_name == "Bob"
    assert events[reply.ts].root_message_id == root.ts and not events[reply.ts].is_mention
    assert events[reply.ts].session_key == events[root.ts].session_key


async def test_the_bots_own_messages_are_acked_and_ignored(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    root = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> hi")
    await publish(redis, keys, action({"kind": "post", "text": "on it"}, root=root.ts))
    await wait_for(lambda: slack.messages(CHANNEL, root.ts, from_bot=True), what="bot reply")
    echoes = [e for e in slack.envelopes() if e["event_id"] not in root.event_ids]
    assert echoes, "the fake echoes the bot's post as a message event, like Slack"
    await wait_for(lambda: all(slack.acked(e["event_id"]) for e in echoes), what="echo acked")
    events = await inbound_events(redis, keys)
    assert [e.message_id for e in events] == [root.ts]


async def test_stop_button_becomes_an_action_event(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    root = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> long task")
    progress_ts = slack.seed_message(CHANNEL, slack.bot_user_id, "Working…", thread_ts=root.ts)
    envelope = slack.click_button(CHANNEL, "U2", progress_ts, "cb_stop", "run-42")
    await wait_for(lambda: any(e["acked"] for e in slack.envelopes() if e["envelope_id"] == envelope))

    actions = [e for e in await inbound_events(redis, keys) if e.kind == "action"]
    assert len(actions) == 1
    stop = actions[0]
    assert stop.action is not None and stop.action.action == "stop" and stop.action.run_id == "run-42"
    assert stop.root_message_id == root.ts and stop.actor.id == "U2" and stop.actor.display_name == "Bob"


async def test_coauthor_modal_submission_becomes_an_action_event(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    view = {
        "type": "modal",
        "callback_id": "cb_coauthor",
        "title": {"type": "plain_text", "text": "Co-author"},
    }
    await publish(
        redis,
        keys,
        action({"kind": "open_view", "trigger_id": "trig-1", "view": view}, root="1700000001.000001"),
    )
    await wait_for(lambda: slack.views(), what="views.open")
    opened = slack.views()[0]["view"]
    opened["state"] = {"values": {"b": {"email": {"type": "plain_text_input", "value": "a@example.com"}}}}
    slack.submit_view("U1", opened)
    await wait_for(lambda: inbound_events(redis, keys), what="submission stored")
    (event,) = await inbound_events(redis, keys)
    assert event.action is not None and event.action.action == "coauthor_submit"
    assert event.action.values == {"email": "a@example.com"}
    assert (event.conversation_id, event.root_message_id) == (CHANNEL, "1700000001.000001")


async def test_without_tokens_the_service_stays_up_and_says_disabled(
    start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    port = free_port()
    ingress = await start_ingress(
        wait_connected=False, slack_app_token="", slack_bot_token="", metrics_port=port
    )

    async def readyz() -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await client.get(f"http://127.0.0.1:{port}/readyz")
        except httpx.HTTPError:
            return None

    response = await wait_for(readyz, what="/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["slack"] == "disabled: SLACK_APP_TOKEN not set"
    await wait_for(lambda: redis.exists(keys.heartbeat("ingress-slack", ingress.settings.instance_id)))
    assert await ingress.shutdown() == 0


async def test_profile_email_rides_on_the_actor_for_co_author_inference(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    slack.add_user("U9", "Grace", email="grace@example.com")
    await start_ingress()
    sent = slack.user_message(CHANNEL, "U9", f"<@{slack.bot_user_id}> commit it")
    for event_id in sent.event_ids:
        await wait_for(lambda e=event_id: slack.acked(e), what=f"ack of {event_id}")
    [(_, event)] = await inbound_entries(redis, keys)
    assert event.actor.display_name == "Grace" and event.actor.email == "grace@example.com"


async def test_raw_envelopes_are_logged_redacted_when_switched_on(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    await start_ingress(log_raw_slack_events=True)
    planted = "xoxb-000000000000-planted-in-a-message"
    sent = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> my token is {planted}")
    for event_id in sent.event_ids:
        await wait_for(lambda e=event_id: slack.acked(e), what=f"ack of {event_id}")
    raw_dir = tmp_path / "data" / "logs" / "raw" / "slack-events"
    files = await wait_for(lambda: sorted(raw_dir.glob("*.jsonl")), what="raw slack log file")
    text = "".join(f.read_text() for f in files)
    assert "my token is" in text and sent.ts in text
    assert planted not in text and slack.bot_token not in text and slack.app_token not in text
    session_raw = tmp_path / "data" / "logs" / "sessions"
    assert list(session_raw.glob("*/raw/slack-events/*.jsonl")), "fanned out to the session's logs"


async def test_raw_envelopes_are_not_logged_by_default(
    slack: FakeSlack, start_ingress: StartIngress, tmp_path: Path
) -> None:
    await start_ingress()
    sent = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> hello")
    for event_id in sent.event_ids:
        await wait_for(lambda e=event_id: slack.acked(e), what=f"ack of {event_id}")
    assert not (tmp_path / "data" / "logs" / "raw").exists()


async def test_a_slash_command_is_stored_then_acked_with_nothing_to_show(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    envelope = slack.slash_command(CHANNEL, "U1", "/codex", "status", thread_ts="1700000000.000100")
    await wait_for(
        lambda: any(e["acked"] for e in slack.envelopes() if e["envelope_id"] == envelope), what="ack"
    )
    [event] = await inbound_events(redis, keys)
    assert event.event_id.startswith("slack-command:") and event.reply_ephemeral
    assert (event.conversation_id, event.root_message_id) == (CHANNEL, "1700000000.000100")
    assert event.text == "/status" and event.is_mention and event.actor.display_name == "Alice"
    [acked] = [e for e in slack.envelopes() if e["envelope_id"] == envelope]
    assert not acked["ack_payload"]  # the answer comes ephemerally from the orchestrator


async def test_a_slash_command_outside_a_thread_is_scoped_to_the_channel(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    slack.slash_command(CHANNEL, "U1", "/codex", "")
    [event] = await wait_for(lambda: inbound_events(redis, keys), what="the stored command")
    assert event.root_message_id == CHANNEL_SCOPE and event.text == "/help"

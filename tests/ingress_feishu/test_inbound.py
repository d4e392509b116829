"""Inbound: real lark-oapi long connection against the fake Feishu, events persisted to real Redis."""

from __future__ import annotations

import asyncio

import httpx

from tests.fakes.fake_feishu import FakeFeishu
from tests.helpers import free_port, wait_for
from tests.ingress_feishu.conftest import RunningIngress, wait_connected


async def test_group_mention_becomes_an_inbound_event_of_the_thread(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    sent = fake.push_message(chat_id="oc_group1", text="fix the flaky test", mention_bot=True)

    [event] = await ingress.wait_inbound(1)
    assert event.event_id == f"feishu:{sent['message_id']}"
    assert event.conversation_id == "oc_group1"
    assert event.root_message_id == sent["message_id"]  # a new thread starts at the mention
    assert event.is_mention and not event.is_direct
    assert event.text == "fix the flaky test"
    assert event.actor.id == "ou_user1"
    await wait_for(lambda: sent["event_id"] in fake.acked_event_ids(), what="the ack")


async def test_mention_inside_a_thread_resumes_that_thread(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="human talk")  # not addressed: ignored
    reply = fake.push_message(
        chat_id="oc_g", text="please look", mention_bot=True, root_id=root["message_id"]
    )

    [event] = await ingress.wait_inbound(1)
    assert event.message_id == reply["message_id"]
    assert event.root_message_id == root["message_id"]
    await wait_for(lambda: reply["event_id"] in fake.acked_event_ids(), what="the ack")
    assert root["event_id"] in fake.acked_event_ids()  # ignored events are acked too


async def test_private_chat_is_one_session_per_chat(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    first = ingress.fake.push_message(chat_id="oc_dm", chat_type="p2p", text="hello")
    second = ingress.fake.push_message(
        chat_id="oc_dm", chat_type="p2p", text="again", root_id=first["message_id"]
    )

    events = await ingress.wait_inbound(2)
    assert {e.root_message_id for e in events} == {"oc_dm"}
    assert all(e.is_direct for e in events)
    assert [e.message_id for e in events] == [first["message_id"], second["message_id"]]


async def test_private_chat_disabled(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(feishu_p2p=False)
    sent = ingress.fake.push_message(chat_id="oc_dm", chat_type="p2p", text="hello")
    await wait_for(lambda: sent["event_id"] in ingress.fake.acked_event_ids(), what="the ack")
    assert await ingress.inbound() == []


async def test_mode_all_forwards_plain_thread_replies(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(feishu_group_message_mode="all")
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="start", mention_bot=True)
    fake.push_message(chat_id="oc_g", text="unrelated top-level chatter")
    reply = fake.push_message(chat_id="oc_g", text="and also this", root_id=root["message_id"])

    events = await ingress.wait_inbound(2)
    follow_up = events[-1]
    assert follow_up.message_id == reply["message_id"]
    assert follow_up.root_message_id == root["message_id"]
    assert not follow_up.is_mention  # the orchestrator continues it only if the thread has a session
    heartbeat = await ingress.heartbeat()
    assert "degraded" not in heartbeat


async def test_mode_at_only_ignores_plain_replies_and_reports_degraded(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(feishu_group_message_mode="at_only")
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="start", mention_bot=True)
    reply = fake.push_message(chat_id="oc_g", text="plain reply", root_id=root["message_id"])
    mention = fake.push_message(chat_id="oc_g", text="@ again", root_id=root["message_id"], mention_bot=True)

    await wait_for(lambda: mention["event_id"] in fake.acked_event_ids(), what="acks")
    assert reply["event_id"] in fake.acked_event_ids()
    events = await ingress.wait_inbound(2)
    assert [e.message_id for e in events] == [root["message_id"], mention["message_id"]]
    heartbeat = await wait_for(ingress.heartbeat, what="a heartbeat")
    assert heartbeat["degraded"].startswith("degraded: FEISHU_GROUP_MESSAGE_MODE=at_only")


async def test_duplicate_delivery_is_persisted_once(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    sent = ingress.fake.push_message(chat_id="oc_g", text="once", mention_bot=True, times=3)
    await wait_for(lambda: ingress.fake.acked_event_ids().count(sent["event_id"]) == 3, what="3 acks")
    events = await ingress.inbound()
    assert [e.message_id for e in events] == [sent["message_id"]]


async def test_fragmented_payload_is_reassembled(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    long_text = "x" * 5000 + " end"
    ingress.fake.push_message(chat_id="oc_g", text=long_text, mention_bot=True, fragments=4)
    [event] = await ingress.wait_inbound(1)
    assert event.text == long_text


async def test_rich_text_post_and_image(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    post = {
        "title": "Bug",
        "content": [
            [{"tag": "at", "user_id": "@_user_1", "user_name": "Codex"}, {"tag": "text", "text": " see "}],
            [{"tag": "a", "href": "https://example.com/x", "text": "the log"}],
            [{"tag": "img", "image_key": "img_abc"}],
        ],
    }
    rich = fake.push_message(chat_id="oc_g", msg_type="post", content=post, mention_bot=True)
    image = fake.push_message(
        chat_id="oc_g", msg_type="image", content={"image_key": "img_two"}, mention_bot=True
    )

    by_id = {e.message_id: e for e in await ingress.wait_inbound(2)}
    first, second = by_id[rich["message_id"]], by_id[image["message_id"]]
    assert first.text == "Bug\nsee\n[the log](https://example.com/x)"
    assert [a.id for a in first.attachments] == ["img_abc"] and first.attachments[0].is_image
    assert second.attachments[0].is_image
    assert second.attachments[0].url == f"feishu://message/{image['message_id']}/resource/img_two?type=image"


async def test_card_stop_button_becomes_an_action_event(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    value = {"cb": "stop", "v": "run-42", "root": "om_root1", "conv": "oc_g"}
    event_id = fake.push_card_action(
        operator_open_id="ou_clicker", value=value, chat_id="oc_g", message_id="om_card"
    )

    [event] = await ingress.wait_inbound(1)
    assert event.kind == "action"
    assert event.event_id == f"feishu-action:{event_id}"
    assert event.root_message_id == "om_root1"
    assert event.actor.id == "ou_clicker"
    assert event.action is not None and event.action.action == "stop" and event.action.run_id == "run-42"
    await wait_for(lambda: event_id in fake.acked_event_ids(), what="the ack")
    toast = next(r.data for r in fake.state.responses if r.data)
    assert toast == {"toast": {"type": "info", "content": "Stopping…"}}


async def test_dropped_connection_reconnects_and_no_event_is_lost(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    before = [fake.push_message(chat_id="oc_g", text=f"before {i}", mention_bot=True) for i in range(3)]
    await wait_for(lambda: len(fake.acked_event_ids()) >= 3, what="first acks")
    assert fake.drop_connections() == 1
    # pushed while the client is away: Feishu keeps them until a connection takes them
    during = [fake.push_message(chat_id="oc_g", text=f"during {i}", mention_bot=True) for i in range(3)]
    await wait_connected(fake, timeout_s=20)
    after = [fake.push_message(chat_id="oc_g", text=f"after {i}", mention_bot=True) for i in range(2)]

    events = await ingress.wait_inbound(8, timeout_s=20)
    expected = {m["message_id"] for m in before + during + after}
    assert sorted(e.message_id for e in events) == sorted(expected)  # each exactly once
    await wait_for(lambda: fake.unacked() == 0, what="every event acked")
    assert fake.state.connections_opened >= 2


async def test_ping_pong_keeps_client_config(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    await wait_for(lambda: ingress.fake.state.pings >= 2, timeout_s=10, what="pings")
    await asyncio.sleep(0)  # the pong carried ClientConfig; the connection stays up
    assert ingress.fake.connected() == 1


async def test_disabled_without_app_id_stays_up(start_ingress, fake: FakeFeishu) -> None:
    ingress: RunningIngress = await start_ingress(feishu_app_id="")
    heartbeat = await wait_for(ingress.heartbeat, what="a heartbeat")
    assert heartbeat["feishu_ws"] == "disabled: FEISHU_APP_ID not set"
    assert fake.state.endpoint_calls == 0
    assert not ingress.task.done()


async def test_event_not_persisted_is_not_acked_and_comes_again(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    stream = ingress.keys.inbound_stream_for("feishu:oc_g:om_fixed")
    await ingress.redis.set(stream, "not a stream")  # XADD now fails with WRONGTYPE
    sent = fake.push_message(chat_id="oc_g", text="keep me", mention_bot=True, message_id="om_fixed")
    await wait_for(lambda: any(r.code == 500 for r in fake.state.responses), what="a refused event")
    assert sent["event_id"] not in fake.acked_event_ids()

    await ingress.redis.delete(stream)  # Redis healthy again: Feishu's re-push lands
    [event] = await ingress.wait_inbound(1, timeout_s=20)
    assert event.message_id == "om_fixed"
    await wait_for(lambda: sent["event_id"] in fake.acked_event_ids(), what="the ack after the re-push")


async def test_readyz_shows_the_connection_and_the_degraded_mode(start_ingress) -> None:
    port = free_port()
    ingress: RunningIngress = await start_ingress(feishu_group_message_mode="at_only", metrics_port=port)

    async def ready() -> dict | None:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"http://127.0.0.1:{port}/readyz")
        return response.json() if response.status_code == 200 else None

    body = await wait_for(ready, what="readyz 200")
    assert body["checks"]["feishu_ws"] == "ok"
    assert body["checks"]["feishu_mode"].startswith("degraded: FEISHU_GROUP_MESSAGE_MODE=at_only")

    async def connected_gauge() -> bool:
        async with httpx.AsyncClient(trust_env=False) as client:
            return "cb_feishu_ws_connected 1.0" in (await client.get(f"http://127.0.0.1:{port}/metrics")).text

    await wait_for(connected_gauge, what="the connected gauge")
    assert ingress.fake.connected() == 1


async def test_raw_events_are_logged_redacted_when_switched_on(start_ingress, tmp_path) -> None:
    ingress: RunningIngress = await start_ingress(log_raw_feishu_events=True)
    planted = "sk-proj-plantedInAFeishuMessage000000"
    sent = ingress.fake.push_message(chat_id="oc_raw", text=f"key is {planted}", mention_bot=True)
    await ingress.wait_inbound(1)
    raw_dir = tmp_path / "data" / "logs" / "raw" / "feishu-events"
    files = await wait_for(lambda: sorted(raw_dir.glob("*.jsonl")), what="raw feishu log file")
    text = "".join(f.read_text() for f in files)
    assert sent["message_id"] in text and "key is" in text
    assert planted not in text and ingress.fake.app_secret not in text

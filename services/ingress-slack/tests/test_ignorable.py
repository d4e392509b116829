"""Which Socket Mode payloads are acked before Bolt: exactly those `on_event` would ignore."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from codex_broker.ingress_slack.inbound import SlackInbound
from codex_broker.ingress_slack.normalize import BotIdentity
from codex_broker.libs.logs import Redactor
from codex_broker.libs.rawlog import RawLog

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", app_id="AAPP", team_id="T1")


def inbound(raw_log: RawLog | None = None) -> SlackInbound:
    # the store and the user directory are not consulted for this decision
    return SlackInbound(cast(Any, None), cast(Any, None), ME, raw_log)


def envelope(**event: object) -> dict[str, object]:
    base: dict[str, object] = {"type": "message", "channel": "C1", "ts": "1700000000.000100"}
    return {"type": "event_callback", "api_app_id": "AAPP", "event": {**base, **event}}


def test_our_own_echoed_post_and_an_edit_skip_bolt() -> None:
    echo = envelope(user="UBOT", bot_id="BBOT", subtype="bot_message", text="the answer")
    edit = envelope(subtype="message_changed", message={"text": "x"})
    assert inbound().ignorable(echo)
    assert inbound().ignorable(edit)


def test_what_the_ingress_forwards_goes_through_bolt() -> None:
    mention = envelope(type="app_mention", user="U1", text="<@UBOT> hi")
    reply = envelope(user="U1", text="more", thread_ts="1699999999.000100")
    assert not inbound().ignorable(mention)
    assert not inbound().ignorable(reply)


def test_non_events_and_raw_logging_always_go_through_bolt(tmp_path: Path) -> None:
    echo = envelope(user="UBOT", bot_id="BBOT", text="the answer")
    assert not inbound().ignorable({"type": "block_actions", "actions": []})
    assert not inbound().ignorable(["not", "a", "dict"])
    raw_log = RawLog("slack-events", tmp_path, True, 10_000, Redactor())
    assert not inbound(raw_log).ignorable(echo), "every envelope must reach the raw log"

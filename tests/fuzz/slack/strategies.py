"""Malformed Slack Socket Mode traffic: broken frames, envelopes, events, and interactive payloads.

Every strategy yields a `SlackCase`: how it is delivered (a raw websocket text frame, or an
envelope the fake Slack tracks for acks and re-sends) and what it carries. `BOT` in any string is
replaced with the fake's bot user id at send time, so that mentions of the bot are generated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import strategies as st

from tests.fuzz.strategies import (
    any_text,
    broken_json_text,
    dumps,
    huge_text,
    json_values,
    non_strings,
    odd_text,
)

BOT = "__BOT__"
Via = Literal["frame", "events_api", "interactive"]


@dataclass
class SlackCase:
    via: Via
    frame: str = ""  # via=frame: the websocket text as sent
    payload: Any = None  # via=events_api/interactive: the envelope's payload (any JSON)
    label: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


# ---- events ------------------------------------------------------------------------------------


# distinct timestamps, so that valid-looking cases are stored rather than de-duplicated
message_ts = st.integers(1, 999_999).map(lambda n: f"1700000001.{n:06d}")


def base_message(channel_type: str = "channel", ts: str = "1700000001.000100") -> dict[str, Any]:
    return {
        "type": "message",
        "channel": "C0FUZZ",
        "user": "U1",
        "text": f"<@{BOT}> hello",
        "ts": ts,
        "event_ts": ts,
        "team": "T0FAKE",
        "channel_type": channel_type,
    }


EVENT_FIELDS = [
    "type",
    "channel",
    "user",
    "text",
    "ts",
    "thread_ts",
    "subtype",
    "channel_type",
    "files",
    "bot_id",
    "app_id",
    "bot_profile",
    "blocks",
    "team",
    "edited",
    "message",
]

weird_files = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"id": st.one_of(st.just("F1"), non_strings, any_text)},
            optional={
                "name": json_values,
                "mimetype": st.one_of(st.just("image/png"), json_values),
                "size": st.one_of(st.integers(), st.just("12"), st.just("big"), json_values),
                "url_private": json_values,
                "mode": st.sampled_from(["hosted", "tombstone", "external"]),
            },
        ),
    ),
    max_size=3,
)


def _mutate_event(event: dict[str, Any], draw: Any) -> dict[str, Any]:
    event = dict(event)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(EVENT_FIELDS))
        choice = draw(st.integers(0, 5))
        if choice == 0:
            event.pop(name, None)
        elif choice == 1:
            event[name] = draw(non_strings)
        elif choice == 2:
            event[name] = draw(odd_text)
        elif choice == 3:
            event[name] = draw(huge_text)
        elif choice == 4 and name == "files":
            event["files"] = draw(weird_files)
        else:
            event[name] = draw(json_values)
    return event


@st.composite
def broken_events(draw: Any) -> Any:
    """The `event` of an event_callback: a message/app_mention with broken fields, or junk."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(json_values)  # not an object at all (or an arbitrary one)
    if kind == 1:
        return {
            "type": draw(
                st.one_of(
                    odd_text,
                    st.sampled_from(
                        ["reaction_added", "member_joined_channel", "app_home_opened", "", "MESSAGE"]
                    ),
                )
            ),
            **draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)),
        }
    base = base_message(draw(st.sampled_from(["channel", "im", "group", "mpim"])), draw(message_ts))
    if draw(st.booleans()):
        base["type"] = "app_mention"
        base.pop("channel_type")
    return _mutate_event(base, draw)


@st.composite
def broken_callbacks(draw: Any) -> dict[str, Any]:
    """A whole events_api payload whose outer shape is broken (the `event` may be fine)."""
    payload: dict[str, Any] = {
        "token": "fake-verification-token",
        "team_id": "T0FAKE",
        "api_app_id": "A0FAKE",
        "type": "event_callback",
        "event_id": "EvFUZZ",
        "event_time": 1700000001,
        "event": base_message(ts=draw(message_ts)),
    }
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*payload.keys(), "authorizations", "is_ext_shared_channel"]))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            payload.pop(name, None)
        elif choice == 1:
            payload[name] = draw(non_strings)
        else:
            payload[name] = draw(
                st.one_of(odd_text, st.sampled_from(["url_verification", "app_rate_limited"]))
            )
    return payload


# ---- interactivity -------------------------------------------------------------------------------


def base_block_actions(action_id: str = "cb_stop", value: str = "run-1") -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U1", "username": "alice", "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "token": "fake-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000002.000100",
            "channel_id": "C0FUZZ",
            "is_ephemeral": False,
            "thread_ts": "1700000001.000100",
        },
        "trigger_id": "123.456.abc",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": "C0FUZZ", "name": "c0fuzz"},
        "message": {"ts": "1700000002.000100", "thread_ts": "1700000001.000100", "text": "Working…"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "type": "button",
                "action_ts": "1700000003.000100",
            }
        ],
    }


@st.composite
def broken_block_actions(draw: Any) -> dict[str, Any]:
    action_id = draw(
        st.sampled_from(["cb_stop", "cb_approve", "cb_deny", "cb_coauthor_open", "cb_x", "foreign"])
    )
    payload = base_block_actions(action_id, draw(st.one_of(st.just("run-1:req-1"), any_text)))
    payload["actions"][0]["action_ts"] = draw(message_ts)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "action", "container", "user", "channel", "message"]))
        target: dict[str, Any]
        if where == "top":
            target = payload
        elif where == "action":
            if (
                not isinstance(payload.get("actions"), list)
                or not payload["actions"]
                or not isinstance(payload["actions"][0], dict)
            ):
                continue
            target = payload["actions"][0]
        else:
            if not isinstance(payload.get(where), dict):
                continue
            target = payload[where]
        name = draw(st.sampled_from([*target.keys(), "extra"])) if target else "extra"
        choice = draw(st.integers(0, 3))
        if choice == 0:
            target.pop(name, None)
        elif choice == 1:
            target[name] = draw(non_strings)
        elif choice == 2:
            target[name] = draw(odd_text)
        else:
            target[name] = draw(huge_text)
    return payload


@st.composite
def broken_view_submissions(draw: Any) -> dict[str, Any]:
    metadata = draw(
        st.one_of(
            st.just(
                json.dumps({"cb": {"conversation_id": "C0FUZZ", "root_message_id": "1700000001.000100"}})
            ),
            json_values.map(dumps),
            st.builds(
                lambda c, r: json.dumps({"cb": {"conversation_id": c, "root_message_id": r}}),
                json_values,
                json_values,
            ),
            any_text,
        )
    )
    view: dict[str, Any] = {
        "id": "VFUZZ",
        "type": "modal",
        "callback_id": draw(st.one_of(st.just("cb_coauthor"), json_values)),
        "private_metadata": metadata,
        "state": draw(
            st.one_of(
                json_values,
                st.builds(
                    lambda v: {"values": v}, st.dictionaries(st.text(max_size=5), json_values, max_size=3)
                ),
            )
        ),
    }
    return {
        "type": "view_submission",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": draw(st.one_of(st.just({"id": "U1", "username": "alice"}), json_values)),
        "api_app_id": "A0FAKE",
        "trigger_id": draw(st.one_of(st.just("t.1"), json_values)),
        "view": draw(st.one_of(st.just(view), json_values)),
    }


# ---- frames ----------------------------------------------------------------------------------------


@st.composite
def broken_frames(draw: Any) -> str:
    """Websocket text that is not a usable Socket Mode envelope."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(broken_json_text())
    if kind == 1:
        return dumps(draw(json_values))
    envelope: dict[str, Any] = {
        "envelope_id": "env-fuzz",
        "type": draw(st.sampled_from(["events_api", "interactive", "slash_commands", "bogus", ""])),
        "payload": {"type": "event_callback"},
        "accepts_response_payload": False,
    }
    if kind == 2:
        envelope.pop(draw(st.sampled_from(["envelope_id", "type", "payload"])))
    elif kind == 3:
        envelope["payload"] = draw(non_strings.filter(lambda v: not isinstance(v, dict)))
    else:
        envelope[draw(st.sampled_from(["envelope_id", "type", "retry_attempt"]))] = draw(non_strings)
    return dumps(envelope)


slack_cases = st.one_of(
    broken_frames().map(lambda f: SlackCase("frame", frame=f, label="frame")),
    broken_callbacks().map(lambda p: SlackCase("events_api", payload=p, label="callback")),
    broken_events().map(lambda e: SlackCase("events_api", payload=e, label="event")),
    broken_block_actions().map(lambda p: SlackCase("interactive", payload=p, label="block_actions")),
    broken_view_submissions().map(lambda p: SlackCase("interactive", payload=p, label="view_submission")),
    st.one_of(
        json_values, st.just({"type": "shortcut"}), st.just({"type": "block_actions", "actions": "x"})
    ).map(lambda p: SlackCase("interactive", payload=p, label="interactive_junk")),
)

"""Malformed Feishu long-connection traffic: broken protobuf, bad headers, bad event payloads,
fragments that never complete.

A `FeishuCase` is either raw websocket bytes (`frames`, sent as they are) or an event payload
(`payload`, any bytes) that the test wraps in a well-formed DATA frame with its own message id,
so the client's answer to it can be read back from the fake. `BOT` is replaced with the fake's
bot open_id at send time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
# `sum` bounds the fragment buffer lark allocates up front ([b""] * sum); see docs/services/fuzzing.md
MAX_SUM = 1000


@dataclass
class FeishuCase:
    label: str
    frames: list[dict[str, Any]] = field(
        default_factory=list
    )  # raw: {"bytes"} or {"method","headers","payload"}
    payload: bytes | None = None  # an event payload for one well-formed DATA frame


def message_event(event_type: str = "im.message.receive_v1", message_id: str = "om_fuzz") -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": "ev_fuzz",
            "event_type": event_type,
            "create_time": "1700000000000",
            "token": "",
            "app_id": "cli_fuzz",
            "tenant_key": "tenant_fake",
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": "ou_user1"},
                "sender_type": "user",
                "tenant_key": "tenant_fake",
            },
            "message": {
                "message_id": message_id,
                "root_id": "",
                "parent_id": "",
                "create_time": "1700000000000",
                "chat_id": "oc_fuzz",
                "chat_type": "group",
                "message_type": "text",
                "content": json.dumps({"text": "@_user_1 hello"}),
                "mentions": [{"key": "@_user_1", "id": {"open_id": BOT}, "name": "Codex"}],
            },
        },
    }


def card_action() -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": "ev_card",
            "event_type": "card.action.trigger",
            "create_time": "1700000000000",
        },
        "event": {
            "operator": {"open_id": "ou_user1"},
            "token": "c-1",
            "action": {
                "value": {"cb": "stop", "v": "run-1", "root": "om_root", "conv": "oc_fuzz"},
                "tag": "button",
            },
            "context": {"open_message_id": "om_card", "open_chat_id": "oc_fuzz"},
        },
    }


MESSAGE_PATHS = [
    ("header",),
    ("header", "event_type"),
    ("header", "event_id"),
    ("header", "create_time"),
    ("event",),
    ("event", "sender"),
    ("event", "sender", "sender_id"),
    ("event", "sender", "sender_type"),
    ("event", "message"),
    ("event", "message", "message_id"),
    ("event", "message", "chat_id"),
    ("event", "message", "chat_type"),
    ("event", "message", "message_type"),
    ("event", "message", "content"),
    ("event", "message", "mentions"),
    ("event", "message", "root_id"),
    ("event", "message", "create_time"),
]
CARD_PATHS = [
    ("event", "operator"),
    ("event", "operator", "open_id"),
    ("event", "action"),
    ("event", "action", "value"),
    ("event", "action", "value", "cb"),
    ("event", "action", "value", "root"),
    ("event", "action", "value", "v"),
    ("event", "context"),
    ("event", "context", "open_chat_id"),
    ("header", "event_id"),
]

content_values = st.one_of(
    broken_json_text(),
    json_values.map(dumps),
    st.builds(lambda t: json.dumps({"text": t}), any_text),
    st.builds(lambda k: json.dumps({"image_key": k}), json_values),
    st.builds(lambda c: json.dumps({"title": "t", "content": c}), json_values),
)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any, *, delete: bool = False) -> None:
    target: Any = doc
    for key in path[:-1]:
        if not isinstance(target, dict) or not isinstance(target.get(key), dict):
            return
        target = target[key]
    if not isinstance(target, dict):
        return
    if delete:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


@st.composite
def broken_event_doc(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        doc, paths = (
            message_event(
                draw(
                    st.sampled_from(
                        [
                            "im.message.receive_v1",
                            "im.message.receive_v1",
                            "card.action.trigger",
                            "im.message.message_read_v1",
                            "im.unknown_v9",
                            "",
                        ]
                    )
                ),
                draw(st.integers(1, 10**9).map(lambda n: f"om_{n}")),
            ),
            MESSAGE_PATHS,
        )
        if draw(st.booleans()):
            _set(
                doc,
                ("event", "message", "message_type"),
                draw(
                    st.sampled_from(
                        [
                            "text",
                            "post",
                            "image",
                            "file",
                            "audio",
                            "media",
                            "sticker",
                            "interactive",
                            "share_chat",
                            "x",
                        ]
                    )
                ),
            )
            _set(doc, ("event", "message", "content"), draw(content_values))
    else:
        doc, paths = card_action(), CARD_PATHS
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        choice = draw(st.integers(0, 4))
        if choice == 0:
            _set(doc, path, None, delete=True)
        elif choice == 1:
            _set(doc, path, draw(non_strings))
        elif choice == 2:
            _set(doc, path, draw(odd_text))
        elif choice == 3:
            _set(doc, path, draw(huge_text))
        else:
            _set(doc, path, draw(json_values))
    return doc


def event_payloads() -> st.SearchStrategy[bytes]:
    """What a DATA frame of type "event" may carry: anything from bytes to a broken event."""
    return st.one_of(
        st.binary(max_size=64),
        broken_json_text().map(lambda s: s.encode("utf-8", "surrogatepass")),
        json_values.map(lambda v: dumps(v).encode()),
        st.just(b'{"schema": "2.0"}'),
        st.just(b'{"schema": "2.0", "header": {"event_type": "im.message.receive_v1"}}'),
        broken_event_doc().map(lambda d: dumps(d).encode()),
    )


header_values = st.one_of(
    st.sampled_from(["event", "card", "ping", "pong", "", "EVENT", "1", "0", "-1", "2", "999", "x"]),
    st.integers(-5, MAX_SUM).map(str),
    odd_text.map(lambda t: t.encode("utf-8", "ignore").decode()),  # protobuf strings are UTF-8
)
header_keys = st.sampled_from(["type", "message_id", "sum", "seq", "trace_id", "biz_rt", "x"])


@st.composite
def raw_frames(draw: Any) -> dict[str, Any]:
    """One websocket message: random bytes, or a protobuf Frame with random method/headers/payload."""
    if draw(st.integers(0, 3)) == 0:
        return {"bytes": draw(st.binary(max_size=200))}
    headers = draw(st.dictionaries(header_keys, header_values, max_size=5))
    if "sum" in headers and headers["sum"].lstrip("-").isdigit() and int(headers["sum"]) > MAX_SUM:
        headers["sum"] = str(MAX_SUM)
    return {
        "method": draw(st.sampled_from([0, 1, 2, 7, -1, 2**31 - 1])),
        "headers": headers,
        "payload": draw(st.one_of(st.none(), st.binary(max_size=64), event_payloads())),
    }


@st.composite
def incomplete_fragments(draw: Any) -> list[dict[str, Any]]:
    """A valid event split into parts, one of them never sent (or sent twice, or out of range)."""
    body = (
        dumps(message_event(message_id=f"om_frag{draw(st.integers(1, 10**9))}"))
        .replace(BOT, "ou_nobody")
        .encode()
    )
    parts = draw(st.integers(2, 5))
    size = -(-len(body) // parts)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    total = len(chunks)
    message_id = f"fm_frag{draw(st.integers(1, 10**9))}"
    missing = draw(st.integers(0, total - 1))
    frames = []
    for seq, chunk in enumerate(chunks):
        if seq == missing:
            continue
        headers = {
            "type": "event",
            "message_id": message_id,
            "sum": str(total),
            "seq": str(seq),
            "trace_id": "t",
        }
        frames.append({"method": 1, "headers": headers, "payload": chunk})
    if draw(st.booleans()) and frames:  # a stray duplicate or an out-of-range part
        extra = dict(frames[0])
        extra["headers"] = {**extra["headers"], "seq": draw(st.sampled_from(["0", str(total), "-1", "x"]))}
        frames.append(extra)
    return frames


feishu_cases = st.one_of(
    st.lists(raw_frames(), min_size=1, max_size=3).map(lambda fs: FeishuCase("frame", frames=fs)),
    event_payloads().map(lambda p: FeishuCase("payload", payload=p)),
    broken_event_doc().map(lambda d: FeishuCase("event", payload=dumps(d).encode())),
    incomplete_fragments().map(lambda fs: FeishuCase("fragments", frames=fs)),
)

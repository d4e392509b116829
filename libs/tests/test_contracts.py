"""Contracts: every message round-trips through encode/decode; bad data raises ContractError."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from codex_broker.libs.contracts import (
    ActionPayload,
    Actor,
    ApprovalDecision,
    Attachment,
    ContractError,
    Coordinates,
    DownloadPayload,
    Form,
    FormField,
    HistoryMessage,
    HistoryPayload,
    InboundEvent,
    ItemInfo,
    OpenViewPayload,
    OutboundAction,
    OutboundResult,
    PostPayload,
    ProgressPayload,
    ReactPayload,
    RpcReply,
    RunControl,
    RunEvent,
    RunInput,
    RunRequest,
    StatusPayload,
    TaskItem,
    TokenUsage,
    UpdatePayload,
    UploadPayload,
    decode,
    encode,
)
from codex_broker.libs.keys import Keys, session_key_of, shard_of

COORDS = Coordinates(platform="slack", conversation_id="C1", root_message_id="100.1")
SK = COORDS.session_key


def _inbound() -> InboundEvent:
    return InboundEvent(
        event_id="slack:C1:100.2",
        platform="slack",
        conversation_id="C1",
        root_message_id="100.1",
        message_id="100.2",
        actor=Actor(id="U1", display_name="Ann"),
        text="hi <@UBOT>",
        is_mention=True,
        attachments=[Attachment(id="F1", name="a.png", mimetype="image/png", size=3, is_image=True)],
    )


def _outbound(payload: object) -> OutboundAction:
    return OutboundAction(
        platform="slack", conversation_id="C1", root_message_id="100.1", session_key=SK, payload=payload
    )


MESSAGES: list[BaseModel] = [
    _inbound(),
    InboundEvent(
        event_id="slack-action:1.2",
        platform="slack",
        conversation_id="C1",
        root_message_id="100.1",
        kind="action",
        actor=Actor(id="U1"),
        action=ActionPayload(action="stop", value="run1"),
    ),
    _outbound(PostPayload(text="**done**")),
    _outbound(UpdatePayload(ref="r1", text="x")),
    _outbound(StatusPayload(state="running", message_id="100.2")),
    _outbound(ReactPayload(message_id="100.2", emoji="eyes")),
    _outbound(UploadPayload(path="/data/sessions/x/workspace/a.txt", filename="a.txt")),
    _outbound(
        ProgressPayload(
            progress_id="run1",
            seq=3,
            phase="finish",
            tasks=[TaskItem(id="t1", title="ls", status="complete")],
            outcome="completed",
            final_text="answer",
        )
    ),
    _outbound(HistoryPayload(limit=10)),
    _outbound(DownloadPayload(attachments=[Attachment(id="F1")], dest_dir="/data/sessions/x")),
    OutboundResult(
        action_id="a1",
        ok=True,
        message_ids=["1.1"],
        messages=[HistoryMessage(message_id="1.1", actor=Actor(id="U1"), text="t")],
    ),
    RunRequest(session_key=SK, coords=COORDS, workspace="/w", input=[RunInput(type="text", text="hello")]),
    RunControl(
        run_id="run1",
        session_key=SK,
        kind="approval",
        approval=ApprovalDecision(request_id="q1", decision="accept"),
    ),
    RunEvent(run_id="run1", session_key=SK, seq=0, kind="accepted", runner_id="codex-runner-1"),
    RunEvent(
        run_id="run1",
        session_key=SK,
        seq=2,
        kind="item_completed",
        item=ItemInfo(id="i1", kind="command", command="ls", exit_code=0, status="completed"),
    ),
    RunEvent(
        run_id="run1", session_key=SK, seq=9, kind="completed", text="final", usage=TokenUsage(total_tokens=7)
    ),
    RpcReply(request_id="r1", ok=False, error="timeout"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{type(m).__name__}")
def test_round_trip(message: BaseModel) -> None:
    raw = encode(message)
    again = decode(type(message), raw)
    assert again == message
    assert encode(again) == raw


def test_outbound_payload_kind_selects_model() -> None:
    action = decode(OutboundAction, encode(_outbound(ReactPayload(message_id="1", emoji="x"))))
    assert isinstance(action.payload, ReactPayload)
    assert action.kind == "react"


def test_reject_extra_field() -> None:
    raw = json.loads(encode(_inbound()))
    raw["surprise"] = 1
    with pytest.raises(ContractError, match="invalid InboundEvent"):
        decode(InboundEvent, json.dumps(raw))


def test_reject_extra_field_in_nested_payload() -> None:
    raw = json.loads(encode(_outbound(PostPayload(text="x"))))
    raw["payload"]["blocks"] = []
    with pytest.raises(ContractError):
        decode(OutboundAction, json.dumps(raw))


def test_reject_unknown_version() -> None:
    raw = json.loads(encode(_inbound()))
    raw["v"] = 2
    with pytest.raises(ContractError, match="invalid InboundEvent"):
        decode(InboundEvent, json.dumps(raw))


def test_reject_wrong_kind() -> None:
    raw = json.loads(encode(_inbound()))
    raw["kind"] = "reaction"
    with pytest.raises(ContractError):
        decode(InboundEvent, json.dumps(raw))
    outbound = json.loads(encode(_outbound(PostPayload(text="x"))))
    outbound["payload"]["kind"] = "delete"
    with pytest.raises(ContractError):
        decode(OutboundAction, json.dumps(outbound))
    event = json.loads(encode(MESSAGES[13]))
    event["kind"] = "exploded"
    with pytest.raises(ContractError):
        decode(RunEvent, json.dumps(event))


@pytest.mark.parametrize("raw", ["", "{", "[]", "null", '"text"', b"\xff\xfe"])
def test_reject_non_objects(raw: str | bytes) -> None:
    with pytest.raises(ContractError):
        decode(InboundEvent, raw)


def test_reject_missing_required_and_wrong_types() -> None:
    with pytest.raises(ContractError):
        decode(RunEvent, json.dumps({"v": 1, "run_id": "r", "session_key": SK, "kind": "completed"}))
    raw = json.loads(encode(MESSAGES[13]))
    raw["seq"] = -1
    with pytest.raises(ContractError):
        decode(RunEvent, json.dumps(raw))


def test_session_key_and_shard_are_stable() -> None:
    event = _inbound()
    assert event.session_key == session_key_of("slack", "C1", "100.1") == "slack:C1:100.1"
    keys = Keys(prefix="cb", shard_count=8)
    shard = shard_of(event.session_key, 8)
    assert keys.inbound_stream_for(event.session_key) == f"cb:stream:inbound:{shard}"
    assert keys.run_events_stream_for(event.session_key) == f"cb:stream:run-events:{shard}"


def test_an_open_view_carries_a_neutral_form_and_an_older_native_view_still_decodes() -> None:
    old = json.dumps(
        {
            "v": 1,
            "platform": "slack",
            "conversation_id": "C1",
            "root_message_id": "1.1",
            "payload": {"kind": "open_view", "trigger_id": "t", "view": {"type": "modal"}},
        }
    )
    legacy = decode(OutboundAction, old)
    assert isinstance(legacy.payload, OpenViewPayload) and legacy.payload.form is None
    form = Form(
        form_id="coauthor",
        title="Configure co-authors",
        fields=[FormField(name="allow_missing", kind="checkbox", label="Unmapped", checked=True)],
    )
    action = OutboundAction(
        platform="feishu", conversation_id="oc_1", root_message_id="om_1", payload=OpenViewPayload(form=form)
    )
    again = decode(OutboundAction, encode(action))
    assert isinstance(again.payload, OpenViewPayload) and again.payload.form == form
    assert again.payload.view == {} and again.payload.trigger_id == ""
    with pytest.raises(ContractError):
        bad_field = {"name": "a", "kind": "slider", "label": "l"}
        decode(
            OpenViewPayload,
            json.dumps(
                {"kind": "open_view", "form": {"form_id": "coauthor", "title": "x", "fields": [bad_field]}}
            ),
        )

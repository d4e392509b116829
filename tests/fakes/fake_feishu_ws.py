"""The long-connection wire format of Feishu, as lark-oapi speaks it: protobuf `Frame`s.

A frame is CONTROL (method 0: ping / pong) or DATA (method 1: an event pushed by the server,
and the client's response echoing the frame's headers with a JSON `Response` payload). Large
payloads arrive in fragments sharing one `message_id` header, with `sum` and `seq`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lark_oapi.ws.pb.pbbp2_pb2 import Frame

CONTROL = 0
DATA = 1


def headers_of(frame: Frame) -> dict[str, str]:
    return {header.key: header.value for header in frame.headers}


def parse(raw: bytes) -> Frame:
    frame = Frame()
    frame.ParseFromString(raw)
    return frame


def _frame(
    method: int, service_id: int, headers: dict[str, str], payload: bytes | None, seq_id: int
) -> bytes:
    frame = Frame()
    frame.SeqID = seq_id
    frame.LogID = 0
    frame.service = service_id
    frame.method = method
    for key, value in headers.items():
        header = frame.headers.add()
        header.key = key
        header.value = value
    if payload is not None:
        frame.payload = payload
    return frame.SerializeToString()


def pong(service_id: int, client_config: dict[str, int]) -> bytes:
    """The server's answer to a ping carries the whole ClientConfig (all four fields)."""
    return _frame(CONTROL, service_id, {"type": "pong"}, json.dumps(client_config).encode(), 0)


def ping(service_id: int) -> bytes:
    return _frame(CONTROL, service_id, {"type": "ping"}, None, 0)


def event_frames(
    service_id: int,
    frame_message_id: str,
    payload: dict[str, Any],
    *,
    fragments: int = 1,
    trace_id: str = "trace",
    kind: str = "event",
    seq_id: int = 1,
) -> list[bytes]:
    """One event as DATA frame(s); `fragments` > 1 splits the payload the way Feishu does."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    fragments = max(1, min(fragments, len(body)))
    size = -(-len(body) // fragments)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        _frame(
            DATA,
            service_id,
            {
                "type": kind,
                "message_id": frame_message_id,
                "sum": str(len(chunks)),
                "seq": str(index),
                "trace_id": trace_id,
            },
            chunk,
            seq_id,
        )
        for index, chunk in enumerate(chunks)
    ]


@dataclass(frozen=True)
class ClientResponse:
    """What the client answered for one pushed event."""

    frame_message_id: str
    code: int
    data: dict[str, Any] | None
    biz_rt_ms: int | None


def client_response(frame: Frame) -> ClientResponse | None:
    headers = headers_of(frame)
    if frame.method != DATA or "message_id" not in headers:
        return None
    try:
        body = json.loads(frame.payload or b"{}")
    except json.JSONDecodeError:
        return ClientResponse(headers["message_id"], -1, None, None)
    data = None
    if body.get("data"):
        import base64

        data = json.loads(base64.b64decode(body["data"]))
    biz_rt = headers.get("biz_rt")
    return ClientResponse(
        headers["message_id"], int(body.get("code", -1)), data, int(biz_rt) if biz_rt else None
    )

"""Minimal regression tests for what the Feishu fuzz run found.

lark-oapi answers 500 to any exception while it handles an event, and Feishu then pushes the
event again — garbage forever, recorded nowhere. A payload that is not JSON, not an event, of an
unknown type, or of a shape our normalizer cannot read is now dead-lettered with the reason and
answered 200; a failure to store (Redis away) still answers 500 (see tests/ingress_feishu).
"""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.fakes import fake_feishu_ws as wire
from tests.fuzz.feishu.test_frames import (
    dead_letter_count,
    frame_bytes,
    ingress,
    response_code,
    send_raw,
    sentinel,
)
from tests.helpers import wait_for
from tests.ingress_feishu.conftest import RunningIngress

__all__ = ["ingress"]

BROKEN_MESSAGE = {
    "schema": "2.0",
    "header": {"event_id": "ev_broken", "event_type": "im.message.receive_v1", "create_time": "1"},
    "event": {"sender": {"sender_id": {"open_id": "ou_1"}}, "message": "not an object"},
}


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"schema": "2.0"}', json.dumps(BROKEN_MESSAGE).encode()],
    ids=["not-json", "not-an-event", "message-not-an-object"],
)
async def test_unhandleable_event_is_answered_200_and_dead_lettered(
    ingress: RunningIngress, redis: Redis, keys: Keys, payload: bytes
) -> None:
    fake = ingress.fake
    headers = {"type": "event", "message_id": "fm_broken", "sum": "1", "seq": "0", "trace_id": "t"}
    send_raw(fake, frame_bytes(fake, {"method": wire.DATA, "headers": headers, "payload": payload}))
    await wait_for(lambda: response_code(fake, "fm_broken") is not None, what="the client's answer")
    assert response_code(fake, "fm_broken") == 200
    assert await dead_letter_count(redis, keys) == 1
    await sentinel(ingress, 1)

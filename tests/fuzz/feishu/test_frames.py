"""Malformed Feishu long-connection traffic through the real lark-oapi ws client and the real
ingress-feishu, against the fake Feishu, with real Redis.

Per generated case, the expected behaviour (asserted):
- bytes that are not a protobuf Frame, frames with unknown methods or bad headers (no type, an
  unknown type, a non-numeric or out-of-range sum/seq), and fragments of which one never arrives:
  dropped by the lark client (it logs the error; an incomplete fragment set expires after 5 s);
  nothing is stored;
- an event payload that is not UTF-8: dropped by the lark client too (it decodes the payload for
  a debug log line before anything else; no answer);
- any other well-formed DATA frame of type "event" is always answered with code 200 — Feishu must not
  push garbage again — and the event is stored as a contract-valid InboundEvent, or ignored by
  rule (counted with its reason), or dead-lettered with the reason;
- after every case the connection still works: a valid message sent next is stored.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest_asyncio
from hypothesis import event, given, note
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from codex_broker.ingress_feishu.connection import _IGNORED_EVENTS
from codex_broker.libs.contracts import InboundEvent, decode
from codex_broker.libs.keys import Keys
from tests.fakes import fake_feishu_ws as wire
from tests.fakes.fake_feishu import FakeFeishu
from tests.fuzz.feishu.strategies import BOT, FeishuCase, feishu_cases
from tests.fuzz.support import fuzz_settings
from tests.helpers import wait_for
from tests.ingress_feishu.conftest import RunningIngress

_n = itertools.count(1)
GROUP = "ingress-feishu"


@pytest_asyncio.fixture
async def ingress(start_ingress: Any) -> RunningIngress:
    return await start_ingress()


def send_raw(fake: FakeFeishu, raw: bytes) -> None:
    """Bytes on the newest long connection (the fake has no public call for raw frames)."""

    async def send() -> None:
        for _ in range(200):  # the client may be between two connections
            if fake._conns:
                await fake._conns[-1].websocket.send_bytes(raw)
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no long connection for 10 s")

    fake._call_soon(send()).result(15)


def frame_bytes(fake: FakeFeishu, spec: dict[str, Any]) -> bytes:
    if "bytes" in spec:
        return bytes(spec["bytes"])
    service_id = fake._conns[-1].service_id if fake._conns else 1
    return wire._frame(spec["method"], service_id, spec["headers"], spec["payload"], 1)


async def stored(redis: Redis, keys: Keys) -> dict[str, InboundEvent]:
    found = {}
    for shard in range(keys.shard_count):
        for entry_id, fields in await redis.xrange(keys.inbound_stream(shard)):
            found[entry_id.decode()] = decode(InboundEvent, fields[b"data"])  # never fails the contract
    return found


async def dead_letter_count(redis: Redis, keys: Keys) -> int:
    rows = await redis.xrange(keys.dead_letter_stream)
    return sum(1 for _, f in rows if f.get(b"group") == GROUP.encode() and f.get(b"reason"))


def outcomes() -> dict[str, float]:
    found: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "cb_feishu_inbound_events":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["result"]] = found.get(sample.labels["result"], 0.0) + sample.value
    return found


def response_code(fake: FakeFeishu, frame_message_id: str) -> int | None:
    with fake.state.lock:
        codes = [r.code for r in fake.state.responses if r.frame_message_id == frame_message_id]
    return codes[-1] if codes else None


def subscribed_but_unused(payload: bytes) -> bool:
    """Event types an app commonly subscribes to besides ours: acked and dropped by rule."""
    try:
        return json.loads(payload)["header"]["event_type"] in _IGNORED_EVENTS
    except Exception:
        return False


def utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def sentinel(ingress: RunningIngress, n: int) -> None:
    sent = ingress.fake.push_message(chat_id="oc_sent", chat_type="p2p", text=f"still there? {n}")
    wanted = f"feishu:{sent['message_id']}"

    async def arrived() -> bool:
        return any(e.event_id == wanted for e in await ingress.inbound())

    await wait_for(arrived, timeout_s=20, what="the valid message after the garbage")
    await wait_for(lambda: sent["event_id"] in ingress.fake.acked_event_ids(), what="the valid message acked")


@fuzz_settings()
@given(case=feishu_cases)
async def test_malformed_long_connection_traffic(
    ingress: RunningIngress, redis: Redis, keys: Keys, case: FeishuCase
) -> None:
    fake = ingress.fake
    n = next(_n)
    await wait_for(lambda: fake.connected() > 0, timeout_s=20, what="the long connection")
    before = set(await stored(redis, keys))
    dead_before = await dead_letter_count(redis, keys)
    counted_before = outcomes()
    connections = fake.state.connections_opened

    if case.payload is not None and not utf8(case.payload):
        event(f"{case.label}: not UTF-8, dropped by the client")
        headers = {"type": "event", "message_id": f"fm_fuzz{n:06d}", "sum": "1", "seq": "0", "trace_id": "f"}
        send_raw(fake, frame_bytes(fake, {"method": wire.DATA, "headers": headers, "payload": case.payload}))
    elif case.payload is not None:
        payload = case.payload.replace(BOT.encode(), fake.bot_open_id.encode())
        note(f"{case.label}: {payload[:1500]!r}")
        frame_id = f"fm_fuzz{n:06d}"
        headers = {"type": "event", "message_id": frame_id, "sum": "1", "seq": "0", "trace_id": "fuzz"}
        send_raw(fake, frame_bytes(fake, {"method": wire.DATA, "headers": headers, "payload": payload}))
        await wait_for(lambda: response_code(fake, frame_id) is not None, what="the client's answer")
        code = response_code(fake, frame_id)
        new = {k: v for k, v in (await stored(redis, keys)).items() if k not in before}
        dead = await dead_letter_count(redis, keys) - dead_before
        counted = {
            k: v - counted_before.get(k, 0.0) for k, v in outcomes().items() if v != counted_before.get(k)
        }
        note(f"code={code} stored={len(new)} dead_letters={dead} counted={counted}")
        event(f"{case.label}: {'dead_letter' if dead else ','.join(sorted(counted)) or 'none'}")
        assert code == 200, f"answered {code}: Feishu would push it again"
        assert counted or dead or subscribed_but_unused(payload), "answered 200 but not counted"
        assert len(new) <= 1, new
    else:
        note(f"{case.label}: {json.dumps(case.frames, default=repr)[:1500]}")
        event(f"{case.label}: dropped by the client")
        for spec in case.frames:
            send_raw(fake, frame_bytes(fake, spec))

    await sentinel(ingress, n)
    if fake.state.connections_opened != connections:  # the client reconnects by itself; show it
        event("the connection was re-opened")
    assert not ingress.task.done(), ingress.task.exception()
    if case.payload is None or not utf8(case.payload):
        fresh = await stored(redis, keys)
        garbage = [e for k, e in fresh.items() if k not in before and e.conversation_id != "oc_sent"]
        assert not garbage, garbage

"""Malformed Socket Mode traffic through the real slack-bolt client and the real ingress-slack,
against the fake Slack, with real Redis.

Per generated case, the expected behaviour (asserted):
- a raw frame that is not a usable envelope (not JSON, not an object, no envelope_id/type/payload,
  a payload that is not an object), and an envelope whose payload is neither an object nor a
  string: dropped by the Socket Mode client (slack_sdk logs it); nothing is stored;
- an envelope that reaches the app is always acked (Slack must not re-send garbage), and counted
  once in `cb_slack_inbound_total`: stored as a contract-valid InboundEvent (or recognised as a
  duplicate), ignored by rule, or dead-lettered with a reason on the dead-letter stream;
- after every case the connection still works: a valid mention sent next is stored.
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

from codex_broker.libs.contracts import InboundEvent, decode
from codex_broker.libs.keys import Keys
from tests.fakes.fake_slack import FakeSlack, _Delivery
from tests.fuzz.slack.strategies import BOT, SlackCase, slack_cases
from tests.fuzz.support import fuzz_settings
from tests.helpers import wait_for
from tests.ingress_slack.conftest import Ingress, StartIngress

_n = itertools.count(1)
GROUP = "ingress-slack"
ACK_WAIT_S = 3.0


@pytest_asyncio.fixture
async def ingress(start_ingress: StartIngress) -> Ingress:
    return await start_ingress()


def with_bot(value: Any, bot: str) -> Any:
    return json.loads(json.dumps(value).replace(BOT, bot))


def send_frame(slack: FakeSlack, text: str) -> None:
    """A raw text frame on the newest Socket Mode websocket (the fake has no public call for it)."""

    async def send() -> None:
        for ws in reversed(slack._sockets):
            if not ws.closed:
                await ws.send_str(text)
                return
        raise AssertionError("no open Socket Mode connection")

    slack._run(send)


def deliver(slack: FakeSlack, kind: str, payload: Any, event_id: str) -> None:
    """An envelope the fake tracks (acks, re-sends) carrying an arbitrary payload."""
    slack._run(slack._deliver, _Delivery(event_id=event_id, kind=kind, payload=payload))


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
    """cb_slack_inbound_total by result: every envelope our listeners see counts once."""
    found: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "cb_slack_inbound":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    result = sample.labels["result"]
                    found[result] = found.get(result, 0.0) + sample.value
    return found


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def reaches_the_app(case: SlackCase) -> bool:
    """slack_sdk drops an envelope whose payload is neither an object nor a string (no ack)."""
    return case.label == "event" or isinstance(case.payload, dict | str)


def answered_by_bolt(case: SlackCase) -> bool:
    """Protocol requests Bolt answers itself (acked, nothing for the app to do)."""
    return isinstance(case.payload, dict) and case.payload.get("type") == "url_verification"


async def acked_within(slack: FakeSlack, event_id: str, timeout_s: float = ACK_WAIT_S) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if slack.acked(event_id):
            return True
        await asyncio.sleep(0.02)
    return False


async def sentinel(slack: FakeSlack, redis: Redis, keys: Keys, n: int) -> None:
    sent = slack.user_message("C0SENT", "U1", f"<@{slack.bot_user_id}> still there? {n}")
    wanted = f"slack:C0SENT:{sent.ts}"

    async def arrived() -> bool:
        return any(e.event_id == wanted for e in (await stored(redis, keys)).values())

    await wait_for(arrived, timeout_s=15, what="the valid mention after the garbage")
    for event_id in sent.event_ids:  # its twin (message + app_mention) too, before the next case
        await wait_for(lambda e=event_id: slack.acked(e), what="the valid mention acked")


@fuzz_settings()
@given(case=slack_cases)
async def test_malformed_socket_mode_traffic(
    slack: FakeSlack, ingress: Ingress, redis: Redis, keys: Keys, case: SlackCase
) -> None:
    n = next(_n)
    before = set(await stored(redis, keys))
    dead_before = await dead_letter_count(redis, keys)
    counted_before = outcomes()
    event_id = f"EvFUZZ{n:06d}"
    note(f"{case.via} {case.label}: {case.frame[:1500] or json.dumps(case.payload)[:1500]}")

    if case.via == "frame":
        send_frame(slack, case.frame.replace(BOT, slack.bot_user_id))
    elif case.label == "event":
        slack.push_event(with_bot(case.payload, slack.bot_user_id), event_id)
    else:
        deliver(slack, case.via, with_bot(case.payload, slack.bot_user_id), event_id)

    if case.via != "frame" and reaches_the_app(case):
        acked = await acked_within(slack, event_id)
        new = {k: v for k, v in (await stored(redis, keys)).items() if k not in before}
        dead = await dead_letter_count(redis, keys) - dead_before
        counted = delta(outcomes(), counted_before)
        note(f"acked={acked} stored={len(new)} dead_letters={dead} counted={counted}")
        event(f"{case.label}: {'dead_letter' if dead else ','.join(sorted(counted)) or 'none'}")
        assert acked, f"{case.label} envelope never acked (Slack would re-send it)"
        assert "failed" not in counted, counted
        assert counted or dead or answered_by_bolt(case), f"{case.label}: acked but not counted"
        assert (dead > 0) == ("dead_letter" in counted), "a dead letter is counted"
        assert len(new) <= 1, new

    await sentinel(slack, redis, keys, n)
    assert not ingress.task.done(), ingress.task.exception()
    if case.via == "frame" or not reaches_the_app(case):
        event(f"{case.label}: dropped by the client")
        fresh = await stored(redis, keys)
        garbage = [e for k, e in fresh.items() if k not in before and e.conversation_id != "C0SENT"]
        assert not garbage, garbage

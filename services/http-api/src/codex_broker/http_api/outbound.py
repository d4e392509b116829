"""Sending OutboundActions to an ingress and waiting for its OutboundResult (RPC over Redis)."""

from __future__ import annotations

import json
import time

from codex_broker.http_api import metrics
from codex_broker.http_api.context import AppContext
from codex_broker.libs.contracts import Coordinates, OutboundAction, OutboundPayload, OutboundResult, new_id
from codex_broker.libs.rpc import RpcTimeout, wait_reply

TIMELINE_CAP = 500


async def request(
    ctx: AppContext, coords: Coordinates, payload: OutboundPayload, *, timeout_s: float
) -> tuple[OutboundAction, OutboundResult | None]:
    """Publish one action with a reply key; the result, or None when no reply came in time."""
    action = OutboundAction(
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=coords.root_message_id,
        session_key=coords.session_key,
        payload=payload,
        reply_to=ctx.keys.rpc_reply(new_id()),
    )
    assert action.reply_to is not None
    started = time.perf_counter()
    await ctx.bus.publish(ctx.keys.outbound_stream(coords.platform), action)
    try:
        result = await wait_reply(ctx.redis, action.reply_to, OutboundResult, timeout_s=timeout_s)
    except RpcTimeout:
        metrics.RPC_SECONDS.labels(kind=payload.kind, outcome="timeout").observe(
            time.perf_counter() - started
        )
        return action, None
    outcome = "ok" if result.ok else "error"
    metrics.RPC_SECONDS.labels(kind=payload.kind, outcome=outcome).observe(time.perf_counter() - started)
    return action, result


async def add_timeline(ctx: AppContext, session_key: str, kind: str, summary: str) -> None:
    """An admin-timeline entry; summaries name what happened, never message content."""
    entry = json.dumps({"at_ms": int(time.time() * 1000), "kind": kind, "summary": summary})
    key = ctx.keys.session_timeline(session_key)
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.lpush(key, entry)
    pipe.ltrim(key, 0, TIMELINE_CAP - 1)
    await pipe.execute()

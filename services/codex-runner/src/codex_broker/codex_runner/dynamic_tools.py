"""Codex dynamic tools: the runner is only their wire.

Which session gets which tools, and what a call does, is the orchestrator's decision (workspace
mode's delegation tools). The runner passes the run's `dynamic_tools` to `thread/start`, and
answers each `item/tool/call` by forwarding it as a `tool_call` run event and waiting, bounded,
for the orchestrator's `RpcReply` on the call's reply key. No answer in time, or a broken one,
is a failed tool call for the model to read — never a hung turn.

Codex 0.169 accepts `thread/start.dynamicTools` only from a client that declared the
`experimentalApi` capability at `initialize` (probed: "requires experimentalApi capability").
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import ContractError, DynamicTool, RpcReply, ToolCall
from codex_broker.libs.rpc import RpcTimeout, wait_reply

METHOD = "item/tool/call"
CAPABILITIES: dict[str, Any] = {"experimentalApi": True}
MAX_OUTPUT_CHARS = 60_000


def thread_start_tools(tools: list[DynamicTool] | None) -> dict[str, Any]:
    """The `dynamicTools` field of thread/start (nothing when the run has none)."""
    if not tools:
        return {}
    return {
        "dynamicTools": [
            {"type": "function", "name": t.name, "description": t.description, "inputSchema": t.input_schema}
            for t in tools
        ]
    }


def tool_call(params: dict[str, Any], reply_to: str) -> ToolCall:
    return ToolCall(
        call_id=str(params.get("callId") or ""),
        tool=str(params.get("tool") or ""),
        arguments=params.get("arguments"),
        reply_to=reply_to,
    )


def response(text: str, *, success: bool) -> dict[str, Any]:
    """A `DynamicToolCallResponse`."""
    return {"contentItems": [{"type": "inputText", "text": text[:MAX_OUTPUT_CHARS]}], "success": success}


def response_of(reply: RpcReply) -> dict[str, Any]:
    if not reply.ok:
        return response(reply.error or "the tool call was refused", success=False)
    body = reply.result.get("text")
    return response(body if isinstance(body, str) else json.dumps(reply.result), success=True)


async def await_answer(redis: Redis, reply_to: str, *, timeout_s: float) -> dict[str, Any]:
    try:
        reply = await wait_reply(redis, reply_to, RpcReply, timeout_s=timeout_s)
    except RpcTimeout:
        return response(f"the broker did not answer this tool call within {timeout_s:g}s", success=False)
    except ContractError:
        return response("the broker's answer to this tool call was unreadable", success=False)
    return response_of(reply)

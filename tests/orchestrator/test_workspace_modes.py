"""Workspace mode's tools and return modes through the orchestrator on real Redis; the runner's
side (tool calls, turn ends) is played by the test, so every mode is checked without Codex."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    OutboundResult,
    RpcReply,
    RunEvent,
    RunRequest,
    ToolCall,
)
from codex_broker.libs.keys import Keys, session_key_of
from codex_broker.libs.rpc import send_reply, wait_reply
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, make_settings, message

HOME = "CMODES"
_roots = itertools.count(500)


@contextlib.asynccontextmanager
async def thread_opener(driver: Driver) -> AsyncIterator[None]:
    """Answers top-level posts (task threads) with a fresh message id each, as an ingress does."""
    answered: set[str] = set()

    async def serve() -> None:
        while True:
            for action in await driver.outbound():
                if (
                    action.root_message_id == CHANNEL_SCOPE
                    and action.reply_to
                    and action.action_id not in answered
                ):
                    answered.add(action.action_id)
                    ids = [f"task-root-{next(_roots)}"]  # never a ts the harness hands out
                    await send_reply(
                        driver.redis,
                        action.reply_to,
                        OutboundResult(action_id=action.action_id, ok=True, message_ids=ids),
                    )
            await asyncio.sleep(0.03)

    task = asyncio.create_task(serve())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def call(driver: Driver, run: RunRequest, tool: str, **arguments: Any) -> RpcReply:
    reply_to = driver.keys.rpc_reply(uuid.uuid4().hex)
    tool_call = ToolCall(call_id=uuid.uuid4().hex, tool=tool, arguments=arguments, reply_to=reply_to)
    await driver.run_event(
        RunEvent(run_id=run.run_id, session_key=run.session_key, seq=0, kind="tool_call", tool_call=tool_call)
    )
    return await wait_reply(driver.redis, reply_to, RpcReply, timeout_s=20)


def body(reply: RpcReply) -> Any:
    assert reply.ok, reply.error
    return json.loads(reply.result["text"])


async def run_of(driver: Driver, session_key: str, index: int = 0) -> RunRequest:
    async def probe() -> RunRequest | None:
        runs = [r for r in await driver.run_requests() if r.session_key == session_key]
        return runs[index] if len(runs) > index else None

    return await wait_for(probe, timeout_s=15, what=f"run {index} of {session_key}")


async def finish(driver: Driver, run: RunRequest, text: str) -> None:
    script = FakeRunnerScript(driver, run)
    await script.claim()
    await script.emit("completed", text=text)


def run_text(run: RunRequest) -> str:
    return "\n".join(i.text or "" for i in run.input)


async def test_every_return_mode_and_wakes_wait_for_an_idle_operator(
    driver: Driver, redis: Redis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    (root / "proj").mkdir(parents=True)
    settings = make_settings(
        key_prefix,
        redis_url,
        tmp_path / "data",
        workspace_home_channels=f"slack:{HOME}",
        allowed_users="U1",  # a delegated message acts for a person: theirs is the access that applies
        workspace_root=str(root),
    )
    await driver.start(settings)
    async with thread_opener(driver):
        first = message("coordinate the work", conversation=HOME, mention=False)
        await driver.inbound(first)
        operator_key = session_key_of("slack", HOME, first.root_message_id)
        op0 = await run_of(driver, operator_key)
        assert op0.dynamic_tools and "Workspace operator" in (op0.developer_instructions or "")
        operator = FakeRunnerScript(driver, op0)
        await operator.claim()

        refused = await call(driver, op0, "start_delegation", cwd="../..", prompt="escape")
        assert not refused.ok and "not under" in (refused.error or "")
        ids = {}
        for name, mode, group in (
            ("a", "wake_on_group", "g"),
            ("b", "wake_on_group", "g"),
            ("c", "record_only", None),
            ("d", "manual", None),
            ("e", "detached", None),
        ):
            started = body(
                await call(
                    driver,
                    op0,
                    "start_delegation",
                    cwd="proj",
                    prompt=f"job {name}",
                    title=name,
                    mode=mode,
                    **({"group": group} if group else {}),
                )
            )["started"]
            ids[name] = started["id"]
        listed = body(await call(driver, op0, "list_delegations"))["delegations"]
        assert [d["title"] for d in listed] == ["a", "b", "c", "d", "e"]
        missing = await call(driver, op0, "read_delegation", id="nope")
        assert not missing.ok and "no delegation" in (missing.error or "")
        await operator.emit("completed", text="started five")

        records = {d["title"]: d for d in listed}
        task_runs = {
            n: await run_of(driver, session_key_of("slack", HOME, records[n]["thread"])) for n in ids
        }
        assert all(not r.dynamic_tools for r in task_runs.values())
        assert all(r.workspace == str((root / "proj").resolve()) for r in task_runs.values())
        for name in ("a", "c", "d", "e"):
            await finish(driver, task_runs[name], f"{name.upper()} done")
        await _settle(driver, operator_key, ids)
        assert (
            len([r for r in await driver.run_requests() if r.session_key == operator_key]) == 1
        )  # no wake yet

        await finish(driver, task_runs["b"], "B done")
        wake = await run_of(driver, operator_key, 1)
        text = run_text(wake)
        assert "<delegation_results>" in text and "A done" in text and "B done" in text
        assert "C done" not in text and "D done" not in text and "E done" not in text

        # the operator is running the wake: a result arriving now waits for it to end
        woken = FakeRunnerScript(driver, wake)
        await woken.claim()
        flushed = body(await call(driver, wake, "flush_delegation_results"))["results"]
        assert sorted(r["answer"] for r in flushed) == ["C done", "D done"]  # kept ones; detached never
        assert body(await call(driver, wake, "flush_delegation_results"))["results"] == []
        assert body(await call(driver, wake, "read_delegation", id=ids["a"]))["latest_answer"] == "A done"

        sent = body(await call(driver, wake, "send_delegation", id=ids["c"], message="one more thing"))
        assert sent["sent"]["status"] == "running"
        await body_group(driver, wake, ids)
        c_again = await run_of(driver, task_runs["c"].session_key, 1)
        assert "one more thing" in run_text(c_again)
        await finish(driver, c_again, "C again")  # now wake_on_done (regrouped below)
        await wait_for(lambda: _queued(redis, keys, operator_key), timeout_s=10, what="the wake queued")
        assert len([r for r in await driver.run_requests() if r.session_key == operator_key]) == 2
        steers = [
            c
            for c in await driver.controls("runner-test")
            if c.kind == "steer" and c.session_key == operator_key
        ]
        assert steers == []  # a wake is never steered into a running operator turn
        await woken.emit("completed", text="noted")
        after = await run_of(driver, operator_key, 2)
        assert "C again" in run_text(after)


async def body_group(driver: Driver, run: RunRequest, ids: dict[str, str]) -> None:
    grouped = body(
        await call(driver, run, "group_delegations", group="solo", ids=[ids["c"]], mode="wake_on_done")
    )
    assert grouped == {"group": "solo", "ids": [ids["c"]], "mode": "wake_on_done"}


async def _queued(redis: Redis, keys: Keys, session_key: str) -> bool:
    return int(await redis.llen(keys.session_queue(session_key))) > 0


async def _settle(driver: Driver, operator_key: str, ids: dict[str, str]) -> None:
    """Wait until the four finished delegations are recorded (their ends are handled)."""

    async def probe() -> bool:
        raw = await driver.redis.hgetall(driver.keys.workspace_delegations(operator_key))
        done = [json.loads(v) for v in raw.values() if json.loads(v)["status"] == "completed"]
        return len(done) == 4

    await wait_for(probe, timeout_s=15, what="four delegations recorded")

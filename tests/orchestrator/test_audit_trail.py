"""Issue 20 item 3, the orchestrator's part of the audit trail, on real Redis: a turn, a steer,
a command Codex ran, an approval asked and decided each land once with the right actor — also
when the run events are delivered twice."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from codex_broker.libs import audit
from codex_broker.libs.contracts import ApprovalRequest, ItemInfo, RunEvent
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, button, message


async def records(redis: Redis, keys: Keys) -> list[audit.AuditRecord]:
    return await audit.export(redis, keys, audit.Query())


async def test_turn_steer_command_and_approval_land_once_with_their_actor(
    driver: Driver, settings_for: Callable[..., Settings], redis: Redis, keys: Keys
) -> None:
    await driver.start(settings_for(admins=["ADM"], approval_policy="on-request"))
    first = message("deploy it", user="U1", name="Alice")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await driver.inbound(first)  # the ingress delivered the mention twice: still one turn
    await wait_for(
        lambda: driver.redis.hget(keys.session_state(request.session_key), "turn_active"), what="turn active"
    )
    await driver.inbound(
        message("also the docs", user="U2", name="Bob", root=first.root_message_id, mention=False)
    )
    command = ItemInfo(
        id="c1",
        kind="command",
        command="git push --token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        exit_code=1,
        status="failed",
        output_tail="SECRET OUTPUT",
    )
    await runner.emit("item_completed", item=command)
    ask = ApprovalRequest(request_id="q1", kind="command", summary="run deploy.sh", command="./deploy.sh")
    await runner.emit("approval_requested", approval=ask)
    prompt = await driver.wait_outbound(lambda a: a.action_id == f"approval:{request.run_id}:q1")
    # the runner's events delivered a second time: nothing new on the trail
    for seq, kind, fields in (
        (2, "item_completed", {"item": command}),
        (3, "approval_requested", {"approval": ask}),
    ):
        await driver.run_event(
            RunEvent(run_id=request.run_id, session_key=request.session_key, seq=seq, kind=kind, **fields)  # type: ignore[arg-type]
        )
    await driver.inbound(
        button("approve", prompt.payload.buttons[0].value, root=first.root_message_id, user="ADM")
    )  # type: ignore[union-attr]

    async def complete() -> list[audit.AuditRecord] | None:
        found = await records(redis, keys)
        return found if any(r.kind == "approval_decided" for r in found) else None

    await wait_for(complete, what="the approval decision on the trail")
    await runner.emit(
        "item_completed",
        item=ItemInfo(id="c2", kind="command", command="true", exit_code=0, status="completed"),
    )
    await wait_for(lambda: _count(redis, keys, "command", 2), what="the second command on the trail")
    found = await records(redis, keys)
    by_kind: dict[str, list[audit.AuditRecord]] = {}
    for r in found:
        by_kind.setdefault(r.kind, []).append(r)
    assert sorted(by_kind) == ["approval_decided", "approval_requested", "command", "steer", "turn"]
    [turn] = by_kind["turn"]
    assert (turn.actor, turn.actor_name, turn.session_key, turn.run_id) == (
        "U1",
        "Alice",
        request.session_key,
        request.run_id,
    )
    [steer] = by_kind["steer"]
    assert (steer.actor, steer.run_id) == ("U2", request.run_id)
    failed, ok = by_kind["command"]
    assert failed.actor == "codex" and failed.exit_code == 1 and failed.summary.startswith("git push")
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in failed.summary  # redacted
    assert ok.summary == "true" and ok.exit_code == 0
    [asked] = by_kind["approval_requested"]
    assert asked.actor == "U1" and asked.summary == "./deploy.sh"
    [decided] = by_kind["approval_decided"]
    assert (decided.actor, decided.action, decided.details["request_id"]) == ("ADM", "accept", "q1")
    raw = b"".join(f[b"data"] for _, f in await redis.xrange(keys.audit_stream))
    assert b"SECRET OUTPUT" not in raw and b"deploy it" not in raw  # no output, no message text


async def _count(redis: Redis, keys: Keys, kind: str, n: int) -> bool:
    return len([r for r in await records(redis, keys) if r.kind == kind]) >= n

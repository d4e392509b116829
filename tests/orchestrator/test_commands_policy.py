"""Commands, policy, approvals, backfill and attachments against real Redis. Where the ingress
would answer an RPC, the test answers it on the reply key exactly as the contract says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codex_broker.libs import session_token
from codex_broker.libs.contracts import (
    Actor,
    ApprovalRequest,
    Attachment,
    HistoryMessage,
    OutboundResult,
    PostPayload,
    ProgressPayload,
)
from codex_broker.libs.rpc import send_reply
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, button, message


async def test_unauthorised_user_gets_one_refusal(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(allowed_users=["U1"]))
    await driver.inbound(message("do it", user="U666", name="Mallory"))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "not allowed" in a.payload.text)
    await driver.inbound(message("do it again", user="U666", name="Mallory"))
    await driver.inbound(message("allowed", user="U1"))
    await driver.wait_runs(1)
    refusals = [t for t in await driver.replies() if "not allowed" in t]
    assert len(refusals) == 1
    assert len(await driver.run_requests()) == 1


async def test_plain_channel_message_ignored_and_dm_session(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    await driver.inbound(message("just chatting", mention=False))
    await driver.inbound(message("help me in private", conversation="D1", mention=False, direct=True))
    [request] = await driver.wait_runs(1)
    assert request.coords.conversation_id == "D1"


def expected_token_file(settings: Settings, session_key: str) -> Path:
    return session_token.token_file(Path(settings.data_root).resolve(), session_key)


async def test_status_new_usage_help(
    driver: Driver, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for()
    await driver.start(settings)
    first = message("start")
    root = first.root_message_id
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim(thread_id="thr-old")
    await driver.inbound(message("/status", mention=False, root=root))
    status = await driver.wait_outbound(lambda a: a.payload.kind == "post" and "*Status:*" in a.payload.text)
    assert isinstance(status.payload, PostPayload) and "Running" in status.payload.text
    from codex_broker.libs.contracts import TokenUsage

    await runner.emit(
        "completed", text="ok", usage=TokenUsage(input_tokens=7, output_tokens=3, total_tokens=10)
    )
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}")
    # the runner minted the thread's API token (libs.session_token); /new must end it at once
    token_path = await session_token.ensure_session_token(
        driver.redis, driver.keys, tmp_path, request.session_key, ttl_s=600
    )
    old_hash = session_token.token_sha256(token_path.read_text())
    assert await driver.redis.get(driver.keys.session_by_token(old_hash)) is not None
    await driver.inbound(message("/usage", mention=False, root=root))
    usage = await driver.wait_outbound(
        lambda a: a.payload.kind == "post" and "This session" in a.payload.text
    )
    assert "10 tokens" in usage.payload.text  # type: ignore[union-attr]
    await driver.inbound(message("/new", mention=False, root=root))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "fresh Codex thread" in a.payload.text)
    assert await driver.redis.get(driver.keys.session_by_token(old_hash)) is None
    await driver.inbound(message("/help", mention=False, root=root))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "-stop" in a.payload.text)
    await driver.inbound(message("again", mention=False, root=root))
    requests = await driver.wait_runs(2)
    assert requests[1].thread_id is None
    instructions = requests[1].developer_instructions or ""
    assert f"BROKER_SESSION_TOKEN_FILE={expected_token_file(settings, request.session_key)}" in instructions


async def test_admin_commands(
    driver: Driver, settings_for: Callable[..., Settings], tmp_path: object
) -> None:
    from pathlib import Path

    project = Path(str(tmp_path)) / "project"
    project.mkdir()
    await driver.start(settings_for(admins=["ADM"], slack_initial_thread_history_count=0))
    first = message(f"/cd {project}", user="U1")
    await driver.inbound(first)
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "Only admins" in a.payload.text)
    await driver.inbound(message(f"/cd {project}", user="ADM", root=first.root_message_id))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "Workspace set" in a.payload.text)
    await driver.inbound(message("/cd /etc", user="ADM", root=first.root_message_id))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and "system directory" in a.payload.text)
    await driver.inbound(message("/config sandbox read-only", user="ADM", root=first.root_message_id))
    await driver.wait_outbound(
        lambda a: a.payload.kind == "post" and "sandbox: `read-only`" in a.payload.text
    )
    await driver.inbound(message("go", user="U1", root=first.root_message_id, mention=False))
    [request] = await driver.wait_runs(1)
    assert request.workspace == str(project.resolve()) and request.sandbox == "read-only"


async def test_approval_buttons(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(admins=["ADM"], approval_policy="on-request"))
    first = message("deploy", user="U1")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    assert request.approval_policy == "on-request"
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    ask = ApprovalRequest(request_id="q1", kind="command", summary="run deploy.sh", command="./deploy.sh")
    await runner.emit("approval_requested", approval=ask)
    prompt = await driver.wait_outbound(lambda a: a.action_id == f"approval:{request.run_id}:q1")
    assert isinstance(prompt.payload, PostPayload)
    assert [b.action for b in prompt.payload.buttons] == ["approve", "deny"]
    value = prompt.payload.buttons[0].value
    await driver.inbound(button("approve", value, root=first.root_message_id, user="U2"))
    await driver.wait_outbound(
        lambda a: a.payload.kind == "ephemeral" and "Only the person" in a.payload.text
    )
    await driver.inbound(button("deny", value, root=first.root_message_id, user="ADM"))

    async def decided() -> list | None:
        return [c for c in await driver.controls(runner.runner_id) if c.kind == "approval"] or None

    [control] = await wait_for(decided, what="approval control")
    assert control.approval is not None and control.approval.decision == "decline"
    assert control.approval.decided_by == "ADM"
    await driver.wait_outbound(lambda a: a.action_id == f"approval-decided:{request.run_id}:q1")


async def test_backfill_once_and_attachments(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for())
    earlier = [
        HistoryMessage(
            message_id="50.0", actor=Actor(id="U2", display_name="Bob"), text="CI is red since noon"
        ),
        HistoryMessage(message_id="51.0", actor=Actor(id="U3", display_name="Cleo"), text="only on linux"),
    ]
    image = Attachment(
        id="F1", name="shot.png", mimetype="image/png", is_image=True, url="https://x/shot.png"
    )
    mention = message("can you look?", root="50.0", ts="52.0", attachments=[image])
    await driver.inbound(mention)
    history = await driver.wait_outbound(lambda a: a.payload.kind == "history", what="history RPC")
    download = await driver.wait_outbound(lambda a: a.payload.kind == "download", what="download RPC")
    assert history.payload.before_message_id == "52.0" and history.payload.limit == 8  # type: ignore[union-attr]
    dest = download.payload.dest_dir  # type: ignore[union-attr]
    assert "/sessions/" in dest and "/workspace/.attachments/" in dest
    saved = image.model_copy(update={"local_path": f"{dest}/shot.png"})
    assert history.reply_to and download.reply_to
    await send_reply(
        driver.redis, history.reply_to, OutboundResult(action_id=history.action_id, ok=True, messages=earlier)
    )
    await send_reply(
        driver.redis, download.reply_to, OutboundResult(action_id=download.action_id, ok=True, files=[saved])
    )
    [request] = await driver.wait_runs(1)
    text = request.input[0].text or ""
    assert "- Bob:\n  > CI is red since noon" in text and "- Cleo:\n  > only on linux" in text
    assert text.index("earlier_thread_messages") < text.index("can you look?")
    assert [i.type for i in request.input] == ["text", "local_image"]
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("completed", text="fixed")
    await driver.wait_idle(request.session_key)
    await driver.inbound(message("thanks", root="50.0", ts="53.0"))  # a second mention: no second backfill
    requests = await driver.wait_runs(2)
    assert "earlier_thread_messages" not in (requests[1].input[0].text or "")
    assert len([a for a in await driver.outbound() if a.payload.kind == "history"]) == 1

    # the thread's root, a mention whose first delivery died with an ingress, arrives late: the
    # backfill already gave it to Codex, so it is not answered a second time
    second = FakeRunnerScript(driver, requests[1])
    await second.claim()
    await second.emit("completed", text="ok")
    await driver.wait_idle(requests[1].session_key)
    late_root = message("CI is red since noon", root="50.0", ts="50.0", user="U2", name="Bob")
    await driver.inbound(late_root)
    await driver.inbound(message("and now?", root="50.0", ts="54.0"))  # a real new one still runs
    requests = await driver.wait_runs(3)
    assert "and now?" in (requests[2].input[0].text or "")
    assert "CI is red" not in (requests[2].input[0].text or "")
    assert len(requests) == 3


async def test_codex_posted_final_is_not_repeated(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    await driver.inbound(message("answer via api"))
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    # what the http-api does when Codex posts kind=final itself
    await driver.redis.hset(
        driver.keys.session_state(request.session_key), "codex_final_posted_run", request.run_id
    )
    await runner.emit("completed", text="the answer")
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}")
    assert isinstance(final.payload, ProgressPayload) and final.payload.final_text is None


async def test_clicks_act_only_on_the_active_run_of_their_own_thread(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """A Stop / Approve button is bound to the thread it was clicked in: a value naming the run of
    another thread, or an earlier run of this one, is refused and reaches no runner."""
    await driver.start(settings_for(admins=["ADM"], approval_policy="on-request"))
    thread_a, thread_b = message("task A", user="ADM"), message("task B", user="ADM")
    await driver.inbound(thread_a)
    await driver.inbound(thread_b)
    requests = {r.coords.root_message_id: r for r in await driver.wait_runs(2)}
    run_a, run_b = requests[thread_a.root_message_id], requests[thread_b.root_message_id]
    runner_a, runner_b = (
        FakeRunnerScript(driver, run_a, "runner-a"),
        FakeRunnerScript(driver, run_b, "runner-b"),
    )
    await runner_a.claim()
    await runner_b.claim()
    ask = ApprovalRequest(request_id="q1", kind="command", summary="rm -rf build", command="rm -rf build")
    await runner_b.emit("approval_requested", approval=ask)
    prompt = await driver.wait_outbound(lambda a: a.action_id == f"approval:{run_b.run_id}:q1")
    assert isinstance(prompt.payload, PostPayload)
    approve_b = prompt.payload.buttons[0].value

    async def refused(click_root: str, action: str, value: str, answer: str) -> None:
        click = button(action, value, root=click_root, user="ADM")
        await driver.inbound(click)
        reply = await driver.wait_outbound(lambda a: a.action_id == f"ephemeral:{click.event_id}")
        assert answer in reply.payload.text  # type: ignore[union-attr]

    await refused(thread_a.root_message_id, "approve", approve_b, "no longer open")
    await refused(thread_a.root_message_id, "stop", run_b.run_id, "already ended")
    assert await driver.controls("runner-b") == []
    assert await driver.redis.hget(driver.keys.run(run_b.run_id), "cancel_requested") is None

    # a stale Stop of thread A's first run while its second run works
    await runner_a.emit("completed", text="done")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{run_a.run_id}")
    await driver.inbound(message("again", user="ADM", root=thread_a.root_message_id, mention=False))
    second_a = next(r for r in await driver.wait_runs(3) if r.run_id not in (run_a.run_id, run_b.run_id))
    await FakeRunnerScript(driver, second_a, "runner-a2").claim()
    await refused(thread_a.root_message_id, "stop", run_a.run_id, "already ended")
    assert await driver.controls("runner-a2") == []

    # the same buttons in their own thread do act
    await driver.inbound(button("approve", approve_b, root=thread_b.root_message_id, user="ADM"))
    await driver.inbound(button("stop", second_a.run_id, root=thread_a.root_message_id, user="ADM"))

    async def acted() -> list | None:
        kinds = [c.kind for c in await driver.controls("runner-b") + await driver.controls("runner-a2")]
        return kinds if sorted(kinds) == ["approval", "interrupt"] else None

    await wait_for(acted, what="approval for B and interrupt for A's second run")

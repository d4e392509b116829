"""The pure notification → RunEvent translation (shapes as Codex 0.169 sends them)."""

from __future__ import annotations

from typing import Any

from codex_broker.codex_runner import translate
from codex_broker.codex_runner.translate import TurnTranslator
from codex_broker.libs.contracts import ApprovalDecision, RunInput

THREAD = "thread-1"
TURN = "turn-1"


def _turn(
    status: str, items: list[dict[str, Any]] | None = None, error: dict[str, Any] | None = None
) -> dict:
    return {"id": TURN, "items": items or [], "status": status, "error": error}


def _note(**params: Any) -> dict[str, Any]:
    return {"threadId": THREAD, "turnId": TURN, **params}


def _delta(item_id: str, text: str) -> dict[str, Any]:
    return _note(itemId=item_id, delta=text)


def _command(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "commandExecution",
        "id": "call_1",
        "command": "/bin/bash -lc 'ls'",
        "cwd": "/w",
        "status": status,
        "commandActions": [],
        **extra,
    }


def _usage(inp: int, out: int) -> dict[str, Any]:
    breakdown = {
        "totalTokens": inp + out,
        "inputTokens": inp,
        "cachedInputTokens": 0,
        "outputTokens": out,
        "reasoningOutputTokens": 0,
    }
    return _note(tokenUsage={"total": breakdown, "last": breakdown, "modelContextWindow": 1000})


def test_turn_started_once_from_response_or_notification() -> None:
    t = TurnTranslator(THREAD)
    first = t.notification("turn/started", _note(turn=_turn("inProgress")))
    assert [(e.kind, e.thread_id, e.turn_id) for e in first] == [("turn_started", THREAD, TURN)]
    assert t.turn_started(TURN) == []


def test_deltas_pass_through_and_messages_are_separated() -> None:
    t = TurnTranslator(THREAD)
    texts = [
        e.text
        for n in (_delta("m1", "Let me "), _delta("m1", "look."), _delta("m2", "Done."))
        for e in t.notification("item/agentMessage/delta", n)
    ]
    assert texts == ["Let me ", "look.", "\n\nDone."]


def test_command_items_carry_command_exit_code_and_bounded_tail() -> None:
    t = TurnTranslator(THREAD, tail_chars=10)
    started = t.notification("item/started", _note(item=_command("inProgress"), startedAtMs=1))
    completed = t.notification(
        "item/completed",
        _note(
            item=_command("completed", exitCode=2, aggregatedOutput="line one\nline two\n"), completedAtMs=1
        ),
    )
    assert started[0].kind == "item_started" and started[0].item is not None
    assert started[0].item.command == "/bin/bash -lc 'ls'" and started[0].item.output_tail is None
    item = completed[0].item
    assert item is not None and item.kind == "command" and item.exit_code == 2 and item.status == "completed"
    assert item.output_tail == "…\nline two\n"


def test_file_changes_web_search_and_ignored_items() -> None:
    t = TurnTranslator(THREAD)
    change = {
        "type": "fileChange",
        "id": "fc1",
        "status": "completed",
        "changes": [
            {"path": "a.py", "diff": "", "kind": {"type": "add"}},
            {"path": "b.py", "diff": "", "kind": {"type": "delete"}},
        ],
    }
    [event] = t.notification("item/completed", _note(item=change, completedAtMs=1))
    assert (
        event.item is not None and event.item.paths == ["a.py", "b.py"] and event.item.kind == "file_change"
    )
    [search] = t.notification(
        "item/started", _note(item={"type": "webSearch", "id": "ws", "query": "redis streams"}, startedAtMs=1)
    )
    assert (
        search.item is not None
        and search.item.kind == "web_search"
        and search.item.summary == "redis streams"
    )
    reasoning = {"type": "reasoning", "id": "r1", "summary": [], "content": []}
    assert t.notification("item/completed", _note(item=reasoning, completedAtMs=1)) == []
    assert t.notification("item/started", _note(item={"type": "someFutureItem", "id": "x"})) == []


def test_plan_updates_become_plan_items() -> None:
    t = TurnTranslator(THREAD)
    plan = [{"step": "read", "status": "completed"}, {"step": "fix", "status": "inProgress"}]
    [event] = t.notification("turn/plan/updated", _note(plan=plan, explanation=None))
    assert event.item is not None and event.item.kind == "plan"
    assert [(s.step, s.status) for s in event.item.plan] == [("read", "completed"), ("fix", "in_progress")]
    assert event.item.summary == "1/2 steps done"


def test_completed_turn_reports_usage_then_final_text() -> None:
    t = TurnTranslator(THREAD)
    t.notification("thread/tokenUsage/updated", _usage(10, 5))
    t.notification("thread/tokenUsage/updated", _usage(20, 7))
    message = {"type": "agentMessage", "id": "m1", "text": "final answer"}
    assert t.notification("item/completed", _note(item=message, completedAtMs=1)) == []
    events = t.notification("turn/completed", {"threadId": THREAD, "turn": _turn("completed")})
    assert [e.kind for e in events] == ["token_usage", "completed"]
    assert (
        events[0].usage is not None
        and events[0].usage.input_tokens == 30
        and events[0].usage.output_tokens == 12
    )
    assert events[1].text == "final answer" and events[1].thread_id == THREAD and events[1].turn_id == TURN
    assert t.done and t.notification("item/agentMessage/delta", _delta("m9", "late")) == []


def test_final_text_falls_back_to_turn_items() -> None:
    t = TurnTranslator(THREAD)
    items = [{"type": "agentMessage", "id": "m1", "text": "from the summary"}]
    [event] = t.notification("turn/completed", {"threadId": THREAD, "turn": _turn("completed", items)})
    assert event.text == "from the summary"


def test_failed_and_interrupted_turns() -> None:
    t = TurnTranslator(THREAD)
    t.notification("error", _note(error={"message": "stream disconnected"}, willRetry=False))
    error = {"message": "unexpected status 401", "additionalDetails": "bad key"}
    [failed] = t.notification("turn/completed", {"threadId": THREAD, "turn": _turn("failed", error=error)})
    assert failed.kind == "failed" and failed.text == "unexpected status 401 (bad key)"

    t = TurnTranslator(THREAD)
    t.notification("error", _note(error={"message": "stream disconnected"}, willRetry=False))
    [failed] = t.notification("turn/completed", {"threadId": THREAD, "turn": _turn("failed")})
    assert failed.text == "stream disconnected"

    t = TurnTranslator(THREAD)
    [interrupted] = t.notification("turn/completed", {"threadId": THREAD, "turn": _turn("interrupted")})
    assert interrupted.kind == "interrupted"


def test_malformed_notification_is_skipped() -> None:
    t = TurnTranslator(THREAD)
    assert t.notification("item/agentMessage/delta", {"threadId": THREAD}) == []
    assert t.notification("some/unknown", {}) == []


def test_approval_requests_and_responses() -> None:
    command = {
        "threadId": THREAD,
        "turnId": TURN,
        "itemId": "c1",
        "startedAtMs": 1,
        "command": "rm -rf build",
        "reason": "clean",
    }
    request = translate.approval_request("item/commandExecution/requestApproval", command, "a1", {})
    assert (request.kind, request.command, request.reason, request.request_id) == (
        "command",
        "rm -rf build",
        "clean",
        "a1",
    )
    accept = ApprovalDecision(request_id="a1", decision="accept")
    decline = ApprovalDecision(request_id="a1", decision="decline")
    assert translate.approval_response("item/commandExecution/requestApproval", command, accept) == {
        "decision": "accept"
    }
    assert translate.approval_response("item/commandExecution/requestApproval", command, decline) == {
        "decision": "decline"
    }

    change = {"threadId": THREAD, "turnId": TURN, "itemId": "fc1", "startedAtMs": 1}
    request = translate.approval_request("item/fileChange/requestApproval", change, "a2", {"fc1": ["x.py"]})
    assert request.kind == "file_change" and request.paths == ["x.py"]
    assert translate.approval_response("item/fileChange/requestApproval", change, decline) == {
        "decision": "decline"
    }

    permissions = {
        "threadId": THREAD,
        "turnId": TURN,
        "itemId": "p1",
        "startedAtMs": 1,
        "cwd": "/w",
        "permissions": {"network": {"enabled": True}},
    }
    request = translate.approval_request("item/permissions/requestApproval", permissions, "a3", {})
    assert request.kind == "permissions"
    granted = translate.approval_response("item/permissions/requestApproval", permissions, accept)
    assert granted == {"permissions": {"network": {"enabled": True}}, "scope": "turn"}
    refused = translate.approval_response("item/permissions/requestApproval", permissions, decline)
    assert refused == {"permissions": {}, "scope": "turn"}


def test_outbound_params() -> None:
    inputs = translate.user_inputs(
        [
            RunInput(type="text", text="hi"),
            RunInput(type="local_image", path="/w/a.png"),
            RunInput(type="text"),
        ]
    )
    assert [translate.dump(i) for i in inputs] == [
        {"type": "text", "text": "hi", "text_elements": []},
        {"type": "localImage", "path": "/w/a.png"},
    ]
    assert translate.approval_policy("on-failure") == "on-request"
    assert translate.approval_policy("never") == "never"
    assert translate.dump(translate.sandbox_policy("workspace-write", True)) == {
        "type": "workspaceWrite",
        "networkAccess": True,
        "excludeSlashTmp": False,
        "excludeTmpdirEnvVar": False,
        "writableRoots": [],
    }
    assert translate.dump(translate.sandbox_policy("danger-full-access", False)) == {
        "type": "dangerFullAccess"
    }
    assert translate.is_thread_not_found("no rollout found for thread id 123")
    assert translate.is_thread_not_found("thread not found: 123")
    assert not translate.is_thread_not_found("rate limited")


def test_turn_overrides_only_for_changed_settings() -> None:
    wanted = translate.desired_settings("/w/s1", "workspace-write", False, "never", None)
    same = translate.ThreadSettings(
        cwd="/w/s1", approval="never", sandbox_type="workspaceWrite", network=False, model="gpt-x"
    )
    assert translate.turn_overrides(same, wanted, "workspace-write") == {}
    changed = translate.desired_settings("/w/s2", "workspace-write", True, "on-failure", "gpt-y")
    overrides = translate.turn_overrides(same, changed, "workspace-write")
    assert (
        overrides["cwd"] == "/w/s2"
        and overrides["approvalPolicy"] == "on-request"
        and overrides["model"] == "gpt-y"
    )
    assert (
        overrides["sandboxPolicy"]["type"] == "workspaceWrite" and overrides["sandboxPolicy"]["networkAccess"]
    )
    assert set(translate.turn_overrides(None, wanted, "workspace-write")) == {
        "cwd",
        "approvalPolicy",
        "sandboxPolicy",
    }
    assert translate.thread_config("workspace-write", True) == {
        "sandbox_workspace_write": {"network_access": True}
    }
    assert translate.thread_config("workspace-write", False) is None

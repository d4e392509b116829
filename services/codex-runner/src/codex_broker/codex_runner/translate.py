"""Pure translation between the broker's contracts and the Codex app-server protocol.

Outbound: RunRequest fields → generated request params. Inbound: app-server notifications of one
turn → `Emit`s (RunEvent drafts without run id and seq, which the run's writer assigns).
Nothing here does I/O or reads a clock, so all of it is unit-tested in
services/codex-runner/tests/.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from codex_broker.codex_runner.protocol import generated as p
from codex_broker.libs.contracts import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ItemInfo,
    PlanStep,
    RunEventKind,
    RunInput,
    Sandbox,
    TokenUsage,
)

log = logging.getLogger(__name__)

UserInput = p.TextUserInput | p.LocalImageUserInput
SandboxPolicy = p.WorkspaceWriteSandboxPolicy | p.ReadOnlySandboxPolicy | p.DangerFullAccessSandboxPolicy
CodexApproval = Literal["untrusted", "on-request", "never"]

# Server → client requests that ask a human to decide.
APPROVAL_METHODS = frozenset(
    {
        "item/commandExecution/requestApproval",
        "item/fileChange/requestApproval",
        "item/permissions/requestApproval",
    }
)
# Item types worth a chat-visible event; the rest (user/agent messages, reasoning, ...) are not.
_ITEM_KINDS: dict[str, Literal["command", "file_change", "web_search", "mcp_tool", "plan"]] = {
    "commandExecution": "command",
    "fileChange": "file_change",
    "webSearch": "web_search",
    "mcpToolCall": "mcp_tool",
    "plan": "plan",
}
_ITEM_STATUS: dict[str, Literal["in_progress", "completed", "failed", "declined"]] = {
    "inProgress": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "declined": "declined",
}
_PLAN_STATUS: dict[str, Literal["pending", "in_progress", "completed"]] = {
    "pending": "pending",
    "inProgress": "in_progress",
    "completed": "completed",
}
MESSAGE_SEPARATOR = "\n\n"


# ---- outbound ---------------------------------------------------------------------------------


def user_inputs(inputs: list[RunInput]) -> list[UserInput]:
    converted: list[UserInput] = []
    for item in inputs:
        if item.type == "text" and item.text:
            converted.append(p.TextUserInput(type="text", text=item.text))
        elif item.type == "local_image" and item.path:
            converted.append(p.LocalImageUserInput(type="localImage", path=item.path))
    return converted


def approval_policy(policy: ApprovalPolicy) -> CodexApproval:
    # Codex 0.169 dropped `on-failure`; asking when the model wants to escalate is the closest.
    return "on-request" if policy == "on-failure" else policy


def sandbox_policy(sandbox: Sandbox, network_access: bool) -> SandboxPolicy:
    if sandbox == "danger-full-access":
        return p.DangerFullAccessSandboxPolicy(type="dangerFullAccess")
    if sandbox == "read-only":
        return p.ReadOnlySandboxPolicy(type="readOnly", networkAccess=network_access)
    return p.WorkspaceWriteSandboxPolicy(type="workspaceWrite", networkAccess=network_access)


_SANDBOX_TYPES = {
    "workspace-write": "workspaceWrite",
    "read-only": "readOnly",
    "danger-full-access": "dangerFullAccess",
}


@dataclass(frozen=True)
class ThreadSettings:
    """The settings a loaded thread runs with: compared per turn so that `turn/start` carries
    overrides only when they change (Codex rebuilds the turn context for each override; a
    sandbox or cwd override costs 10-15 ms per turn)."""

    cwd: str
    approval: str
    sandbox_type: str
    network: bool
    model: str | None = None


def desired_settings(
    workspace: str, sandbox: Sandbox, network_access: bool, policy: ApprovalPolicy, model: str | None
) -> ThreadSettings:
    return ThreadSettings(
        cwd=os.path.abspath(workspace),
        approval=approval_policy(policy),
        sandbox_type=_SANDBOX_TYPES[sandbox],
        network=network_access and sandbox != "danger-full-access",
        model=model,
    )


def effective_settings(response: p.ThreadStartResponse | p.ThreadResumeResponse) -> ThreadSettings:
    """What Codex reports a started or resumed thread runs with."""
    policy = response.sandbox
    network = getattr(policy, "networkAccess", False)
    return ThreadSettings(
        cwd=os.path.abspath(response.cwd),
        approval=response.approvalPolicy if isinstance(response.approvalPolicy, str) else "granular",
        sandbox_type=policy.type,
        network=network in (True, "enabled") and policy.type != "dangerFullAccess",
        model=response.model,
    )


def turn_overrides(
    current: ThreadSettings | None, wanted: ThreadSettings, sandbox: Sandbox, *, sealed: bool = False
) -> dict[str, Any]:
    """`turn/start` fields for whatever differs between the thread's settings and the run's.

    A sealed thread never gets a `sandboxPolicy`: that legacy policy would replace the session's
    permission profile (its network switch is part of the profile, set at thread start/resume).
    """
    overrides: dict[str, Any] = {}
    if current is None or current.cwd != wanted.cwd:
        overrides["cwd"] = wanted.cwd
    if current is None or current.approval != wanted.approval:
        overrides["approvalPolicy"] = wanted.approval
    if not sealed and (
        current is None or (current.sandbox_type, current.network) != (wanted.sandbox_type, wanted.network)
    ):
        overrides["sandboxPolicy"] = dump(sandbox_policy(sandbox, wanted.network))
    if wanted.model and (current is None or current.model != wanted.model):
        overrides["model"] = wanted.model
    return overrides


def thread_config(sandbox: Sandbox, network_access: bool) -> dict[str, Any] | None:
    """Config overrides for thread/start and thread/resume that set what the sandbox mode can't.

    Only when needed: a config override makes Codex build a separate config for the thread. An
    operator config that enables network access is corrected by a turn override instead.
    """
    if sandbox == "workspace-write" and network_access:
        return {"sandbox_workspace_write": {"network_access": True}}
    return None


def dump(params: Any) -> dict[str, Any]:
    """Wire form of generated params: camelCase names as generated, no nulls."""
    return params.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


# ---- errors -----------------------------------------------------------------------------------

_NOT_FOUND_MARKERS = ("no rollout found", "thread not found", "not found for thread")


def is_thread_not_found(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _NOT_FOUND_MARKERS)


def turn_error_text(error: p.TurnError | None, fallback: str | None = None) -> str:
    if error is None:
        return fallback or "the turn failed without a reason from Codex"
    text = error.message
    if error.additionalDetails:
        text = f"{text} ({error.additionalDetails})"
    return text


# ---- items ------------------------------------------------------------------------------------


def _tail(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else "…" + text[-limit:]


def _item_kind(raw: dict[str, Any]) -> str | None:
    return _ITEM_KINDS.get(str(raw.get("type")))


def item_info(item: Any, *, tail_chars: int) -> ItemInfo | None:
    """A chat-visible summary of a thread item, or None for items chat does not show."""
    if isinstance(item, p.CommandExecutionThreadItem):
        return ItemInfo(
            id=item.id,
            kind="command",
            summary=item.command,
            command=item.command,
            exit_code=item.exitCode,
            output_tail=_tail(item.aggregatedOutput, tail_chars) if item.status != "inProgress" else None,
            status=_ITEM_STATUS.get(item.status, "in_progress"),
        )
    if isinstance(item, p.FileChangeThreadItem):
        paths = [change.path for change in item.changes]
        return ItemInfo(
            id=item.id,
            kind="file_change",
            summary=", ".join(paths)[:500],
            paths=paths,
            status=_ITEM_STATUS.get(item.status, "in_progress"),
        )
    if isinstance(item, p.WebSearchThreadItem):
        return ItemInfo(id=item.id, kind="web_search", summary=item.query)
    if isinstance(item, p.McpToolCallThreadItem):
        return ItemInfo(
            id=item.id,
            kind="mcp_tool",
            summary=f"{item.server}.{item.tool}",
            status=_ITEM_STATUS.get(item.status, "in_progress"),
        )
    if isinstance(item, p.PlanThreadItem):
        return ItemInfo(id=item.id, kind="plan", summary=item.text[:2000])
    return None


def plan_item(note: p.TurnPlanUpdatedNotification) -> ItemInfo:
    steps = [PlanStep(step=s.step, status=_PLAN_STATUS.get(s.status, "pending")) for s in note.plan]
    done = sum(1 for s in steps if s.status == "completed")
    return ItemInfo(
        id=f"plan:{note.turnId}",
        kind="plan",
        summary=note.explanation or f"{done}/{len(steps)} steps done",
        plan=steps,
        status="completed" if steps and done == len(steps) else "in_progress",
    )


def token_usage(b: p.TokenUsageBreakdown) -> TokenUsage:
    return TokenUsage(
        input_tokens=b.inputTokens,
        cached_input_tokens=b.cachedInputTokens,
        output_tokens=b.outputTokens,
        reasoning_output_tokens=b.reasoningOutputTokens,
        total_tokens=b.totalTokens,
    )


def add_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=a.input_tokens + b.input_tokens,
        cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        reasoning_output_tokens=a.reasoning_output_tokens + b.reasoning_output_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )


# ---- approvals --------------------------------------------------------------------------------


def approval_request(
    method: str, params: dict[str, Any], request_id: str, known_paths: dict[str, list[str]]
) -> ApprovalRequest:
    """What a human needs to decide on, from an app-server approval request."""
    if method == "item/commandExecution/requestApproval":
        command = p.CommandExecutionRequestApprovalParams.model_validate(params)
        return ApprovalRequest(
            request_id=request_id,
            kind="command",
            summary=f"Run `{command.command}`" if command.command else "Run a command",
            command=command.command,
            reason=command.reason,
        )
    if method == "item/fileChange/requestApproval":
        change = p.FileChangeRequestApprovalParams.model_validate(params)
        paths = known_paths.get(change.itemId, [])
        return ApprovalRequest(
            request_id=request_id,
            kind="file_change",
            summary=f"Change {', '.join(paths)}"[:500] if paths else "Change files",
            paths=paths,
            reason=change.reason or (f"write access to {change.grantRoot}" if change.grantRoot else None),
        )
    permissions = p.PermissionsRequestApprovalParams.model_validate(params)
    return ApprovalRequest(
        request_id=request_id,
        kind="permissions",
        summary="Grant additional permissions",
        reason=permissions.reason,
    )


def approval_response(method: str, params: dict[str, Any], decision: ApprovalDecision) -> dict[str, Any]:
    accept = decision.decision == "accept"
    if method == "item/commandExecution/requestApproval":
        return dump(p.CommandExecutionRequestApprovalResponse(decision="accept" if accept else "decline"))
    if method == "item/fileChange/requestApproval":
        return dump(p.FileChangeRequestApprovalResponse(decision="accept" if accept else "decline"))
    requested = p.PermissionsRequestApprovalParams.model_validate(params).permissions
    granted = (
        p.GrantedPermissionProfile(fileSystem=requested.fileSystem, network=requested.network)
        if accept
        else p.GrantedPermissionProfile()
    )
    return dump(p.PermissionsRequestApprovalResponse(permissions=granted, scope="turn"))


# ---- the turn ---------------------------------------------------------------------------------


@dataclass
class Emit:
    """A RunEvent without run id / seq."""

    kind: RunEventKind
    text: str | None = None
    item: ItemInfo | None = None
    usage: TokenUsage | None = None
    approval: ApprovalRequest | None = None
    decision: ApprovalDecision | None = None
    thread_id: str | None = None
    turn_id: str | None = None


@dataclass(frozen=True)
class _Message:
    """A completed agent message: `phase` as Codex reports it (None: the model did not say)."""

    id: str
    text: str
    phase: str | None


@dataclass
class TurnTranslator:
    """Notifications of one turn → Emits, in order. `done` once the terminal Emit was produced.

    Answers (docs/architecture.md, "Every answer shown"): a completed agent message is an answer
    when Codex marks it `final_answer`, or, unmarked (`None`, `partial_answer`), when nothing but
    the turn's end or a steered-in user message follows it — a message followed by a tool call
    was a preamble, and `commentary` only ever shows in the live view. Every answer but the
    turn's last goes out as an `answer` Emit once it is known not to be the last; the last is
    the terminal event's text, as before.
    """

    thread_id: str
    tail_chars: int = 2000
    turn_id: str | None = None
    started: bool = False
    done: bool = False
    usage: TokenUsage | None = None
    last_error: str | None = None
    file_paths: dict[str, list[str]] = field(default_factory=dict)
    _message_id: str | None = None
    _message_has_text: bool = False
    _candidate: _Message | None = None  # the latest message that may still be an answer
    _last: _Message | None = None
    _answered: set[str] = field(default_factory=set)

    def turn_started(self, turn_id: str) -> list[Emit]:
        """From the turn/start response or the turn/started notification, whichever comes first."""
        if self.started:
            return []
        self.started = True
        self.turn_id = turn_id
        return [Emit("turn_started", thread_id=self.thread_id, turn_id=turn_id)]

    def notification(self, method: str, params: dict[str, Any]) -> list[Emit]:
        if self.done:
            return []
        try:
            return self._dispatch(method, params)
        except ValidationError as exc:  # a newer Codex shape: skip the event, keep the turn
            log.warning("unparsed app-server notification", extra={"method": method, "error": str(exc)[:300]})
            return []

    def _dispatch(self, method: str, params: dict[str, Any]) -> list[Emit]:
        if method == "item/agentMessage/delta":
            return self._delta(p.AgentMessageDeltaNotification.model_validate(params))
        if method == "item/started":
            return self._item("item_started", params)
        if method == "item/completed":
            return self._item("item_completed", params)
        if method == "turn/plan/updated":
            return [
                Emit("item_completed", item=plan_item(p.TurnPlanUpdatedNotification.model_validate(params)))
            ]
        if method == "thread/tokenUsage/updated":
            last = token_usage(p.ThreadTokenUsageUpdatedNotification.model_validate(params).tokenUsage.last)
            # `total` spans the whole thread; the sum of `last` over this turn is the turn's usage.
            self.usage = last if self.usage is None else add_usage(self.usage, last)
            return []
        if method == "error":
            note = p.ErrorNotification.model_validate(params)
            if not note.willRetry:
                self.last_error = turn_error_text(note.error)
            return []
        if method == "turn/started":
            return self.turn_started(p.TurnStartedNotification.model_validate(params).turn.id)
        if method == "turn/completed":
            return self._completed(p.TurnCompletedNotification.model_validate(params).turn)
        return []

    def _delta(self, note: p.AgentMessageDeltaNotification) -> list[Emit]:
        text = note.delta
        if note.itemId != self._message_id:
            # a new message of the same turn (preamble, then answer): keep them apart
            if self._message_id is not None and self._message_has_text:
                text = MESSAGE_SEPARATOR + text
            self._message_id = note.itemId
            self._message_has_text = False
        if note.delta:
            self._message_has_text = True
        return [Emit("text_delta", text=text)] if text else []

    def _item(self, kind: Literal["item_started", "item_completed"], params: dict[str, Any]) -> list[Emit]:
        raw = params.get("item") or {}
        if raw.get("type") == "agentMessage":
            return self._agent_message(raw) if kind == "item_completed" else []
        if raw.get("type") == "userMessage":
            # a steer taken into the turn: what was answered before it stays answered
            return self._settle(answer=True) if kind == "item_started" else []
        if _item_kind(raw) is None:
            return []
        model = p.ItemStartedNotification if kind == "item_started" else p.ItemCompletedNotification
        info = item_info(model.model_validate(params).item, tail_chars=self.tail_chars)
        if info is None:
            return []
        if info.kind == "file_change":
            self.file_paths[info.id] = info.paths
        emits = self._settle(answer=False) if kind == "item_started" and info.kind != "plan" else []
        return [*emits, Emit(kind, item=info)]

    def _agent_message(self, raw: dict[str, Any]) -> list[Emit]:
        phase = raw.get("phase")
        message = _Message(str(raw.get("id") or ""), str(raw.get("text") or ""), phase)
        emits = self._settle(answer=False)  # a later message: an earlier final answer is not the last
        self._last = message
        if phase != "commentary" and message.text.strip():
            self._candidate = message
        return emits

    def _settle(self, *, answer: bool) -> list[Emit]:
        """Something follows the candidate: it is an answer if marked so, or if `answer` (a
        steer took over the turn); otherwise (a tool call followed) it was a preamble."""
        candidate, self._candidate = self._candidate, None
        if candidate is None or not (answer or candidate.phase == "final_answer"):
            return []
        self._answered.add(candidate.id)
        return [Emit("answer", text=candidate.text)]

    def _final_text(self, turn: p.Turn) -> str:
        if self._candidate is not None:
            return self._candidate.text
        if self._last is None:
            return _last_agent_text(turn)
        # nothing qualified: the last message, unless it already went out as an answer
        return "" if self._last.id in self._answered else self._last.text

    def _completed(self, turn: p.Turn) -> list[Emit]:
        self.done = True
        emits = [Emit("token_usage", usage=self.usage)] if self.usage is not None else []
        if turn.status == "completed":
            text = self._final_text(turn)
            emits.append(Emit("completed", text=text, thread_id=self.thread_id, turn_id=turn.id))
            return emits
        # a marked final answer made before the stop or the failure is still an answer
        emits = self._settle(answer=False) + emits
        if turn.status == "interrupted":
            emits.append(Emit("interrupted", text="interrupted", thread_id=self.thread_id, turn_id=turn.id))
        else:
            reason = turn_error_text(turn.error, self.last_error)
            emits.append(Emit("failed", text=reason, thread_id=self.thread_id, turn_id=turn.id))
        return emits


def _last_agent_text(turn: p.Turn) -> str:
    for item in reversed(turn.items):
        if isinstance(item, p.AgentMessageThreadItem):
            return item.text
    return ""

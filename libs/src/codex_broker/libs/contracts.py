"""Versioned pydantic models of every message that crosses a Redis stream.

What crosses Redis is plain data: no live SDK objects, no secrets. Every model carries `v`
(the contract version); a consumer that meets an unknown version dead-letters the entry
instead of guessing. Models are frozen-ish value objects: encode with `encode()`, decode with
`decode(Model, raw)` so that bad data raises `ContractError` with a readable reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codex_broker.libs.keys import session_key_of

CONTRACT_VERSION: Literal[1] = 1

Platform = Literal["slack", "feishu", "web", "discord"]
PLATFORMS: tuple[Platform, ...] = ("slack", "feishu", "web", "discord")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class ContractError(ValueError):
    """Raised when bytes from a stream are not a valid message of the expected model."""


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)
    v: Literal[1] = CONTRACT_VERSION


M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> str:
    return message.model_dump_json(exclude_none=True)


def decode(model: type[M], raw: str | bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(f"invalid {model.__name__}: {exc.errors(include_input=False)}") from exc


# ---- shared value objects -------------------------------------------------------------------


class Coordinates(BaseModel):
    """Where a session lives on its platform: the conversation and the thread's root message."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    platform: Platform
    conversation_id: str = Field(min_length=1, max_length=256)
    root_message_id: str = Field(min_length=1, max_length=256)

    @property
    def session_key(self) -> str:
        return session_key_of(self.platform, self.conversation_id, self.root_message_id)


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    display_name: str = ""
    is_bot: bool = False
    email: str | None = None
    # an admin by the platform's own roles (Discord's DISCORD_ADMIN_ROLES), as the ingress judged
    # it; written only when true, so consumers of the previous minor version still decode the rest
    platform_admin: bool = Field(default=False, exclude_if=lambda v: not v)


class Attachment(BaseModel):
    """A platform file reference; `local_path` is set once the ingress has downloaded it."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str = ""
    mimetype: str = ""
    size: int = 0
    url: str | None = None
    is_image: bool = False
    local_path: str | None = None


class ActionPayload(BaseModel):
    """A button press or view submission on one of our messages."""

    model_config = ConfigDict(extra="forbid")
    action: Literal[
        "stop", "approve", "deny", "retry", "coauthor_open", "coauthor_submit", "open_thread", "other"
    ]
    value: str = ""
    run_id: str | None = None
    request_id: str | None = None
    message_id: str | None = None
    trigger_id: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)


class JobCallback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str
    status: Literal["event", "complete", "fail", "timeout", "cancelled"]
    summary: str = ""
    details: Any = None


# ---- inbound --------------------------------------------------------------------------------


# root_message_id of a channel-wide scope: a platform command given outside any thread
CHANNEL_SCOPE = "channel"


class InboundEvent(Contract):
    """One normalized platform event (or job callback) for one session scope."""

    event_id: str = Field(min_length=1, max_length=256)
    platform: Platform
    conversation_id: str = Field(min_length=1, max_length=256)
    root_message_id: str = Field(min_length=1, max_length=256)
    message_id: str = ""
    kind: Literal["message", "action", "job_callback"] = "message"
    actor: Actor
    text: str = ""
    is_mention: bool = False
    is_direct: bool = False
    attachments: list[Attachment] = Field(default_factory=list)
    action: ActionPayload | None = None
    job: JobCallback | None = None
    # a platform command (Slack's /codex): its answers go only to the actor (ephemeral); added
    # within version 1, so written only when true: an older consumer (extra="forbid") meets it
    # only on such events, never on every event a newer ingress writes
    reply_ephemeral: bool = Field(default=False, exclude_if=lambda v: not v)
    received_at: datetime = Field(default_factory=utcnow)

    @property
    def coords(self) -> Coordinates:
        return Coordinates(
            platform=self.platform,
            conversation_id=self.conversation_id,
            root_message_id=self.root_message_id,
        )

    @property
    def session_key(self) -> str:
        return self.coords.session_key


# ---- outbound -------------------------------------------------------------------------------


class Button(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["stop", "approve", "deny", "retry", "coauthor_open", "open_thread"]
    label: str
    value: str = ""
    style: Literal["primary", "danger", "default"] = "default"


class PostPayload(BaseModel):
    """A message in the thread. `text` is Markdown; the ingress converts and splits it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["post"] = "post"
    text: str = ""
    format: Literal["markdown", "text", "rich_text", "card"] = "markdown"
    rich: Any = None
    buttons: list[Button] = Field(default_factory=list)
    ref: str | None = None  # logical name to update this message later


class UpdatePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["update"] = "update"
    ref: str | None = None
    message_id: str | None = None
    text: str = ""
    buttons: list[Button] = Field(default_factory=list)


class StatusPayload(BaseModel):
    """Thread-level 'working' indicator: assistant status, a reaction, or nothing."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["status"] = "status"
    state: Literal["running", "completed", "failed", "interrupted", "idle"]
    message_id: str | None = None  # the user message to react to, where reactions are used
    text: str = ""


class ReactPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["react"] = "react"
    message_id: str
    emoji: str
    remove: bool = False


class UploadPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["upload"] = "upload"
    path: str | None = None
    content_base64: str | None = None
    filename: str | None = None
    title: str | None = None
    initial_comment: str | None = None
    alt_text: str | None = None
    snippet_type: str | None = None
    content_type: str | None = None


class EphemeralPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["ephemeral"] = "ephemeral"
    user_id: str
    text: str
    buttons: list[Button] = Field(default_factory=list)
    # A thread of the same conversation the message points to (its root message id); the
    # platform adds its own link to it (Platform.thread_link). Written only when set: an older
    # ingress refuses the field and dead-letters that answer (a button's reply, never a turn).
    thread: str = Field(default="", exclude_if=lambda v: not v)


class FormOption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=150)
    label: str
    description: str = ""


class FormField(BaseModel):
    """One field of a `Form`. Its submission arrives in `ActionPayload.values` under `name`
    (a `multi_select` may arrive split as `<name>_<n>` lists on platforms that cap the options
    of one element; a `checkbox` as a truthy value or a non-empty list)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["multi_select", "checkbox", "text"]
    label: str
    text: str = ""  # checkbox: the box's own words; multi_select: the placeholder
    options: list[FormOption] = Field(default_factory=list)
    selected: list[str] = Field(default_factory=list)  # multi_select: initially chosen values
    checked: bool = False  # checkbox: initially ticked
    value: str = ""  # text: the initial value
    max_length: int = Field(default=254, ge=1, le=3000)


class Form(BaseModel):
    """A platform-neutral form: each ingress renders it in its own way (a Slack modal, a Feishu
    form card) and turns its submission into an action event `<form_id>_submit`."""

    model_config = ConfigDict(extra="forbid")
    form_id: Literal["coauthor"]
    title: str = Field(max_length=24)
    intro: str = ""  # Markdown above the fields
    fields: list[FormField]
    submit_label: str = "Save"
    cancel_label: str = "Cancel"


class OpenViewPayload(BaseModel):
    """A form for the user who pressed a button. `form` (added within version 1; only ever set
    on co-author open actions, so every other action still decodes with an older consumer) is
    the platform-neutral description; `view` is a platform-native view, for older producers.
    A platform without modals shows the form in the thread (Feishu: a form card)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["open_view"] = "open_view"
    trigger_id: str = ""
    view: dict[str, Any] = Field(default_factory=dict)
    form: Form | None = None


class TaskItem(BaseModel):
    """One unit of visible work in a progress view (a command, a file edit, a search)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    status: Literal["in_progress", "complete", "error"] = "in_progress"
    output: str = ""


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str
    status: Literal["pending", "in_progress", "completed"] = "pending"


class ProgressPayload(BaseModel):
    """A full snapshot of one run's live view; the ingress picks the platform surface.

    Snapshots (not deltas) make redelivery and reordering harmless: the ingress applies a
    snapshot only when its `seq` is newer than the last one applied for `progress_id`.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["progress"] = "progress"
    progress_id: str
    seq: int = Field(ge=0)
    phase: Literal["start", "update", "finish"]
    answer_text: str = ""
    activity: str = ""
    tasks: list[TaskItem] = Field(default_factory=list)
    plan: list[PlanStep] = Field(default_factory=list)
    show_stop: bool = True
    outcome: Literal["completed", "interrupted", "failed"] | None = None
    final_text: str | None = None  # posted as the answer on finish; None = already posted
    run_id: str | None = None


class HistoryPayload(BaseModel):
    """RPC: fetch thread history (oldest first) before an exclusive message id."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["history"] = "history"
    before_message_id: str | None = None
    limit: int = Field(default=50, ge=1, le=1000)


class DownloadPayload(BaseModel):
    """RPC: download attachments into a session workspace."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["download"] = "download"
    attachments: list[Attachment]
    dest_dir: str
    max_bytes: int = 20 * 1024 * 1024


OutboundPayload = Annotated[
    PostPayload
    | UpdatePayload
    | StatusPayload
    | ReactPayload
    | UploadPayload
    | EphemeralPayload
    | OpenViewPayload
    | ProgressPayload
    | HistoryPayload
    | DownloadPayload,
    Field(discriminator="kind"),
]


class OutboundAction(Contract):
    """One effect on a platform. `action_id` is its idempotency key: never done twice."""

    action_id: str = Field(default_factory=new_id, min_length=1, max_length=256)
    platform: Platform
    conversation_id: str
    root_message_id: str
    session_key: str | None = None
    payload: OutboundPayload
    reply_to: str | None = None  # RPC reply key when the requester waits for the result
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def kind(self) -> str:
        return self.payload.kind


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str
    actor: Actor
    text: str
    ts: datetime | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class OutboundResult(Contract):
    action_id: str
    ok: bool
    error: str | None = None
    message_ids: list[str] = Field(default_factory=list)
    messages: list[HistoryMessage] = Field(default_factory=list)
    files: list[Attachment] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


# ---- runs -----------------------------------------------------------------------------------

Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
ApprovalPolicy = Literal["never", "on-request", "on-failure", "untrusted"]


class RunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "local_image"]
    text: str | None = None
    path: str | None = None


class DynamicTool(BaseModel):
    """A tool the client answers itself (Codex dynamic tools: `thread/start.dynamicTools`, then
    `item/tool/call`). Set by the orchestrator, which alone decides which session gets which."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = Field(max_length=4000)
    input_schema: dict[str, Any]


class RunRequest(Contract):
    """Start one Codex turn for a session (new or resumed Codex thread)."""

    run_id: str = Field(default_factory=new_id)
    session_key: str
    coords: Coordinates
    thread_id: str | None = None  # resume this Codex thread; None → thread/start
    workspace: str
    auth_profile: str = "default"
    sandbox: Sandbox = "workspace-write"
    network_access: bool = False
    approval_policy: ApprovalPolicy = "never"
    developer_instructions: str | None = None
    model: str | None = None
    # a workspace below the repos cache that does not exist yet is cloned from here first
    # (per-channel defaults, `-repo`); None: the runner only creates the directory
    repo_url: str | None = None
    input: list[RunInput]
    # workspace mode's operator session only; given at thread/start (Codex keeps them with the
    # thread). Added within version 1: absent unless set, so older runners still decode others.
    dynamic_tools: list[DynamicTool] | None = None
    created_at: datetime = Field(default_factory=utcnow)


# The `text` of an `interrupted` RunEvent from a runner that drained (SIGTERM, `codex-broker
# drain`) past its grace starts with this code: the orchestrator tells the thread the broker is
# restarting instead of "Stopped.". A prefix, not a new field, so older orchestrators decode it.
RESTART_HANDOVER = "restart_handover"


class ApprovalDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    decision: Literal["accept", "decline"]
    decided_by: str = ""


class RunControl(Contract):
    """A control for one run on its runner's control stream; `drain` is for the runner itself
    (`codex-broker drain`: stop claiming, finish or hand over its turns, exit) and names no run."""

    control_id: str = Field(default_factory=new_id)
    run_id: str = ""
    session_key: str = ""
    kind: Literal["interrupt", "steer", "approval", "drain"]
    input: list[RunInput] = Field(default_factory=list)
    approval: ApprovalDecision | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ItemInfo(BaseModel):
    """A Codex thread item, summarized for chat: what it is and a bounded amount of detail."""

    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Literal["command", "file_change", "web_search", "plan", "mcp_tool", "reasoning", "other"]
    summary: str = ""
    command: str | None = None
    exit_code: int | None = None
    output_tail: str | None = None
    paths: list[str] = Field(default_factory=list)
    plan: list[PlanStep] = Field(default_factory=list)
    status: Literal["in_progress", "completed", "failed", "declined"] = "in_progress"


class TokenUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0
    total_tokens: int = 0


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    kind: Literal["command", "file_change", "permissions", "other"]
    summary: str
    command: str | None = None
    paths: list[str] = Field(default_factory=list)
    reason: str | None = None


RunEventKind = Literal[
    "accepted",  # a runner claimed the run (runner_id set)
    "turn_started",
    "text_delta",
    "item_started",
    "item_completed",
    "approval_requested",
    "approval_resolved",
    "token_usage",
    "completed",
    "interrupted",
    "failed",
    "steer_rejected",  # a steer control never reached a turn (control_id set); outside the sequence
    "answer",  # a complete answer of the turn that is not its last (text set); see docs/architecture.md
    "tool_call",  # Codex called a dynamic tool (tool_call set); outside the sequence, see ToolCall
]
TERMINAL_RUN_EVENTS: frozenset[str] = frozenset({"completed", "interrupted", "failed"})


class ToolCall(BaseModel):
    """A dynamic tool call the runner forwards: the orchestrator answers it with an `RpcReply`
    (result `{"text": ...}`) on `reply_to`, which the runner waits on (bounded) before it
    answers Codex. Outside the run's sequence (seq 0); its idempotency key is `call_id`."""

    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(min_length=1, max_length=256)
    tool: str = Field(max_length=256)
    arguments: Any = None
    reply_to: str


class RunEvent(Contract):
    """What happened in a run, in order: `seq` increases by one per event within a run.

    `steer_rejected` stands outside that sequence (seq 0, idempotency key `control_id`): the
    runner reports it even for a run it no longer holds, when it cannot know the run's seq.
    Added within version 1: the new kind and the optional `control_id` only ever appear on that
    event, so every other event still decodes with an older consumer. `answer` (also added within
    version 1) is in the sequence: an earlier complete answer of the turn, posted as it comes; the
    turn's last answer stays the terminal event's text.
    """

    run_id: str
    session_key: str
    seq: int = Field(ge=0)
    kind: RunEventKind
    runner_id: str | None = None
    thread_id: str | None = None
    turn_id: str | None = None
    text: str | None = None  # delta text, final text, or failure reason
    item: ItemInfo | None = None
    approval: ApprovalRequest | None = None
    decision: ApprovalDecision | None = None
    usage: TokenUsage | None = None
    control_id: str | None = None  # steer_rejected: the RunControl that was not applied
    tool_call: ToolCall | None = None  # tool_call only
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_RUN_EVENTS


# ---- RPC ------------------------------------------------------------------------------------


class RpcReply(Contract):
    request_id: str
    ok: bool
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)


# ---- audit trail ------------------------------------------------------------------------------

AuditKind = Literal[
    "turn",  # a person started a turn (actor: who, session_key: which thread)
    "steer",  # a person's message went into the running turn
    "command",  # a command Codex ran (summary: command line, exit_code; never its output)
    "file",  # a file posted into a thread through the http-api
    "approval_requested",  # Codex asked; actor: the run's requester, who may decide
    "approval_decided",  # actor: who clicked; action: accept | decline
    "budget",  # a budget decision (action: notice | refuse | exempt | raise ...)
    "admin",  # an admin action (action: profile.save, session.delete, ...; actor: admin identity)
]
AUDIT_KINDS: tuple[AuditKind, ...] = (
    "turn",
    "steer",
    "command",
    "file",
    "approval_requested",
    "approval_decided",
    "budget",
    "admin",
)


class AuditRecord(Contract):
    """One entry of the append-only audit stream: who made the broker do what, where. Never
    output, message text or credentials: a command line and a file name are the most it holds."""

    audit_id: str = Field(default_factory=new_id)
    kind: AuditKind
    at_ms: int
    actor: str  # a platform user id, `codex` (the session's own calls) or the admin identity
    actor_name: str = ""
    platform: str = ""
    session_key: str = ""  # the thread
    run_id: str = ""
    action: str = ""
    summary: str = ""
    exit_code: int | None = None
    details: dict[str, str | int | bool] = Field(default_factory=dict)

# Generated from `codex app-server generate-json-schema` of the pinned Codex CLI by
# scripts/regen-codex-protocol.sh (protocol/regen.py). Do not edit by hand.

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, conint, constr


class Model(RootModel[Any]):
    root: Any


class AdditionalNetworkPermissions(BaseModel):
    enabled: bool | None = None


class AgentMessageDeltaNotification(BaseModel):
    delta: str
    itemId: str
    threadId: str
    turnId: str


class AgentMessageDisplay(BaseModel):
    action: str = Field(
        ...,
        description="Unknown actions must be left for the producing client to handle.",
    )
    blockType: str | None = None
    checkTrustedContacts: bool | None = None
    cyberTrustedAccess: bool | None = None


class AgentMessageModeration(BaseModel):
    display: AgentMessageDisplay | None = None
    moderated: bool


class Granular(BaseModel):
    mcp_elicitations: bool
    request_permissions: bool | None = False
    rules: bool
    sandbox_approval: bool
    skill_approval: bool | None = False


class GranularAskForApproval(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    granular: Granular


class AsyncUserInputQuestion(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    options: list[str] | None = None
    title: str


class ByteRange(BaseModel):
    end: conint(ge=0)
    start: conint(ge=0)


class ClientInfo(BaseModel):
    name: str
    title: str | None = None
    version: str


class HttpConnectionFailed(BaseModel):
    httpStatusCode: conint(ge=0) | None = None


class HttpConnectionFailedCodexErrorInfo(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    httpConnectionFailed: HttpConnectionFailed


class ResponseStreamConnectionFailed(BaseModel):
    httpStatusCode: conint(ge=0) | None = None


class ResponseStreamConnectionFailedCodexErrorInfo(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    responseStreamConnectionFailed: ResponseStreamConnectionFailed


class ResponseStreamDisconnected(BaseModel):
    httpStatusCode: conint(ge=0) | None = None


class ResponseStreamDisconnectedCodexErrorInfo(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    responseStreamDisconnected: ResponseStreamDisconnected


class ResponseTooManyFailedAttempts(BaseModel):
    httpStatusCode: conint(ge=0) | None = None


class ResponseTooManyFailedAttemptsCodexErrorInfo(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    responseTooManyFailedAttempts: ResponseTooManyFailedAttempts


class ListFilesCommandAction(BaseModel):
    command: str
    path: str | None = None
    type: Literal["listFiles"] = Field(..., title="ListFilesCommandActionType")


class SearchCommandAction(BaseModel):
    command: str
    path: str | None = None
    query: str | None = None
    type: Literal["search"] = Field(..., title="SearchCommandActionType")


class UnknownCommandAction(BaseModel):
    command: str
    type: Literal["unknown"] = Field(..., title="UnknownCommandActionType")


class AcceptWithExecpolicyAmendment(BaseModel):
    execpolicy_amendment: list[str]


class AcceptWithExecpolicyAmendmentCommandExecutionApprovalDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    acceptWithExecpolicyAmendment: AcceptWithExecpolicyAmendment


class InputTextDynamicToolCallOutputContentItem(BaseModel):
    text: str
    type: Literal["inputText"] = Field(
        ..., title="InputTextDynamicToolCallOutputContentItemType"
    )


class InputImageDynamicToolCallOutputContentItem(BaseModel):
    imageUrl: str
    type: Literal["inputImage"] = Field(
        ..., title="InputImageDynamicToolCallOutputContentItemType"
    )


class InputAudioDynamicToolCallOutputContentItem(BaseModel):
    audioUrl: str
    type: Literal["inputAudio"] = Field(
        ..., title="InputAudioDynamicToolCallOutputContentItemType"
    )


class FileChangeRequestApprovalParams(BaseModel):
    grantRoot: str | None = Field(
        None,
        description="[UNSTABLE] When set, the agent is asking the user to allow writes under this root for the remainder of the session (unclear if this is honored today).",
    )
    itemId: str
    reason: str | None = Field(
        None,
        description="Optional explanatory reason (e.g. request for extra write access).",
    )
    startedAtMs: int = Field(
        ...,
        description="Unix timestamp (in milliseconds) when this approval request started.",
    )
    threadId: str
    turnId: str


class FileChangeRequestApprovalResponse(BaseModel):
    decision: Literal["accept"] | Literal["acceptForSession"] | Literal["decline"] | Literal["cancel"]


class GlobPatternFileSystemPath(BaseModel):
    pattern: str
    type: Literal["glob_pattern"] = Field(..., title="GlobPatternFileSystemPathType")


class RootFileSystemSpecialPath(BaseModel):
    kind: Literal["root"]


class MinimalFileSystemSpecialPath(BaseModel):
    kind: Literal["minimal"]


class TmpdirFileSystemSpecialPath(BaseModel):
    kind: Literal["tmpdir"]


class SlashTmpFileSystemSpecialPath(BaseModel):
    kind: Literal["slash_tmp"]


class InputTextFunctionCallOutputContentItem(BaseModel):
    text: str
    type: Literal["input_text"] = Field(
        ..., title="InputTextFunctionCallOutputContentItemType"
    )


class AudioUrlFunctionCallOutputContentItem(BaseModel):
    type: Literal["input_audio"] = Field(
        ..., title="InputAudioFunctionCallOutputContentItemType"
    )
    audio_url: str


class FileIdFunctionCallOutputContentItem1(BaseModel):
    type: Literal["input_audio"] = Field(
        ..., title="InputAudioFunctionCallOutputContentItemType"
    )
    file_id: str


class EncryptedContentFunctionCallOutputContentItem(BaseModel):
    encrypted_content: str
    type: Literal["encrypted_content"] = Field(
        ..., title="EncryptedContentFunctionCallOutputContentItemType"
    )


class GitInfo(BaseModel):
    branch: str | None = None
    originUrl: str | None = None
    sha: str | None = None


class HookPromptFragment(BaseModel):
    hookRunId: str
    text: str


class UsageLimitExceededImageGenerationFailure(BaseModel):
    limitId: str
    resetsAt: int | None = None
    type: Literal["usageLimitExceeded"] = Field(
        ..., title="UsageLimitExceededImageGenerationFailureType"
    )


class ImageGenerationFailure(RootModel[UsageLimitExceededImageGenerationFailure]):
    root: UsageLimitExceededImageGenerationFailure


class ImageGenerationInputImage(BaseModel):
    path: str = Field(
        ...,
        description="A path that is guaranteed to be absolute and normalized (though it is not guaranteed to be canonicalized or exist on the filesystem).\n\nIMPORTANT: When deserializing an `AbsolutePathBuf`, a base path must be set using [AbsolutePathBufGuard::new]. If no base path is set, the deserialization will fail unless the path being deserialized is already absolute.",
    )
    sha256: str = Field(
        ...,
        description="Lowercase SHA-256 of the file bytes read before image normalization.",
    )


class InitializeCapabilities(BaseModel):
    experimentalApi: bool | None = Field(
        False, description="Opt into receiving experimental API methods and fields."
    )
    explicitGatewayOauth: bool | None = Field(
        None,
        description="Use explicit gateway OAuth login instead of automatic browser authorization. Applies to this app-server's gateway runtime; later connections cannot undo it.",
    )
    extensions: dict[str, Any] | None = Field(
        None, description="MCP extension settings declared by the app-server client."
    )
    mcpServerOpenaiFormElicitation: bool | None = Field(
        None,
        description="Legacy opt-in for the `openai/form` MCP extension.\n\nNew clients should declare `openai/form` in [`Self::extensions`].",
    )
    optOutNotificationMethods: list[str] | None = Field(
        None,
        description="Exact notification method names that should be suppressed for this connection (for example `thread/started`).",
    )
    requestAttestation: bool | None = Field(
        False,
        description="Opt into `attestation/generate` requests for upstream `x-oai-attestation`.",
    )
    requiredHumanApproval: bool | None = Field(
        None,
        description="Present `humanCommand` approvals to a person and return only a one-time decision. Requires `experimentalApi`. Pending requests can be replayed to compatible clients.",
    )


class InitializeParams(BaseModel):
    capabilities: InitializeCapabilities | None = None
    clientInfo: ClientInfo


class InitializeResponse(BaseModel):
    codexHome: str = Field(
        ..., description="Absolute path to the server's $CODEX_HOME directory."
    )
    platformFamily: str = Field(
        ...,
        description='Platform family for the running app-server target, for example `"unix"` or `"windows"`.',
    )
    platformOs: str = Field(
        ...,
        description='Operating system for the running app-server target, for example `"macos"`, `"linux"`, or `"windows"`.',
    )
    userAgent: str


class JSONRPCErrorError(BaseModel):
    code: int
    data: Any | None = None
    message: str


class McpAppUi(BaseModel):
    preferredModelDisplayMode: Literal["inline", "fullscreen"]
    resourceUri: str


class McpToolCallAppContext(BaseModel):
    actionName: str | None = None
    appName: str | None = None
    connectorId: str
    linkId: str | None = None
    resourceUri: str | None = None


class McpToolCallError(BaseModel):
    message: str


class McpToolCallResult(BaseModel):
    field_meta: Any | None = Field(None, alias="_meta")
    content: list[Any]
    structuredContent: Any | None = None


class MemoryCitationEntry(BaseModel):
    lineEnd: conint(ge=0)
    lineStart: conint(ge=0)
    note: str
    path: str


class MisalignmentSteer(BaseModel):
    message: str


class AddPatchChangeKind(BaseModel):
    type: Literal["add"] = Field(..., title="AddPatchChangeKindType")


class DeletePatchChangeKind(BaseModel):
    type: Literal["delete"] = Field(..., title="DeletePatchChangeKindType")


class UpdatePatchChangeKind(BaseModel):
    move_path: str | None = None
    type: Literal["update"] = Field(..., title="UpdatePatchChangeKindType")


class DangerFullAccessSandboxPolicy(BaseModel):
    type: Literal["dangerFullAccess"] = Field(
        ..., title="DangerFullAccessSandboxPolicyType"
    )


class ReadOnlySandboxPolicy(BaseModel):
    networkAccess: bool | None = False
    type: Literal["readOnly"] = Field(..., title="ReadOnlySandboxPolicyType")


class ExternalSandboxSandboxPolicy(BaseModel):
    networkAccess: Literal["restricted", "enabled"] | None = "restricted"
    type: Literal["externalSandbox"] = Field(
        ..., title="ExternalSandboxSandboxPolicyType"
    )


class WorkspaceWriteSandboxPolicy(BaseModel):
    excludeSlashTmp: bool | None = False
    excludeTmpdirEnvVar: bool | None = False
    networkAccess: bool | None = False
    type: Literal["workspaceWrite"] = Field(
        ..., title="WorkspaceWriteSandboxPolicyType"
    )
    writableRoots: list[str] | None = []


class ServerRequestResolvedNotification(BaseModel):
    requestId: str | int
    threadId: str


class CustomSessionSource(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    custom: str


class Settings(BaseModel):
    developer_instructions: str | None = None
    model: str
    reasoning_effort: constr(min_length=1) | None = None


class OtherSubAgentSource(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    other: str


class TextElement(BaseModel):
    byteRange: ByteRange = Field(
        ...,
        description="Byte range in the parent `text` buffer that this element occupies.",
    )
    placeholder: str | None = Field(
        None,
        description="Optional human-readable placeholder for the element, displayed in the UI.",
    )


class HookPromptThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    fragments: list[HookPromptFragment]
    id: str
    type: Literal["hookPrompt"] = Field(..., title="HookPromptThreadItemType")


class PlanThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    text: str
    type: Literal["plan"] = Field(..., title="PlanThreadItemType")


class ReasoningThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    content: list[str] | None = []
    id: str
    summary: list[str] | None = []
    type: Literal["reasoning"] = Field(..., title="ReasoningThreadItemType")


class McpToolCallThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    appContext: McpToolCallAppContext | None = None
    arguments: Any
    durationMs: int | None = Field(
        None, description="The duration of the MCP tool call in milliseconds."
    )
    error: McpToolCallError | None = None
    id: str
    mcpAppResourceUri: str | None = Field(
        None,
        description="Legacy compatibility field; prefer `mcpAppUi.resourceUri` when available.",
    )
    mcpAppUi: McpAppUi | None = Field(
        None,
        description="Presentation captured from the invoked descriptor; absent in older history.",
    )
    pluginId: str | None = None
    readOnlyHint: bool | None = None
    result: McpToolCallResult | None = None
    server: str
    status: Literal["inProgress", "completed", "failed"]
    tool: str
    type: Literal["mcpToolCall"] = Field(..., title="McpToolCallThreadItemType")


class DynamicToolCallThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    arguments: Any
    contentItems: list[InputTextDynamicToolCallOutputContentItem | InputImageDynamicToolCallOutputContentItem | InputAudioDynamicToolCallOutputContentItem] | None = (
        None
    )
    durationMs: int | None = Field(
        None, description="The duration of the dynamic tool call in milliseconds."
    )
    id: str
    namespace: str | None = None
    status: Literal["inProgress", "completed", "failed"]
    success: bool | None = None
    tool: str
    type: Literal["dynamicToolCall"] = Field(..., title="DynamicToolCallThreadItemType")


class SubAgentActivityThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    agentPath: str
    agentThreadId: str
    id: str
    kind: Literal["started", "interacted", "interrupted", "completed"]
    model: str | None = Field(
        None,
        description="Resolved model at sub-agent creation; absent from older records and other activities.",
    )
    reasoningEffort: constr(min_length=1) | None = Field(
        None, description="Resolved reasoning effort at sub-agent creation, when known."
    )
    type: Literal["subAgentActivity"] = Field(
        ..., title="SubAgentActivityThreadItemType"
    )


class ImageViewThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    path: str
    type: Literal["imageView"] = Field(..., title="ImageViewThreadItemType")


class SleepThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    durationMs: conint(ge=0)
    id: str
    type: Literal["sleep"] = Field(..., title="SleepThreadItemType")


class FileIdThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    failure: ImageGenerationFailure | None = None
    generationId: str | None = Field(
        None,
        description="Image generation identifier for the generated image, when provided by the image backend.",
    )
    id: str
    inputImages: list[ImageGenerationInputImage] | None = Field(
        None,
        description="Observed local inputs for a completed generation, absent on older items.",
    )
    revisedPrompt: str | None = None
    savedPath: str | None = None
    status: str
    transparentBackground: bool | None = None
    type: Literal["imageGeneration"] = Field(..., title="ImageGenerationThreadItemType")
    fileId: str


class ResultThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    failure: ImageGenerationFailure | None = None
    generationId: str | None = Field(
        None,
        description="Image generation identifier for the generated image, when provided by the image backend.",
    )
    id: str
    inputImages: list[ImageGenerationInputImage] | None = Field(
        None,
        description="Observed local inputs for a completed generation, absent on older items.",
    )
    revisedPrompt: str | None = None
    savedPath: str | None = None
    status: str
    transparentBackground: bool | None = None
    type: Literal["imageGeneration"] = Field(..., title="ImageGenerationThreadItemType")
    result: str


class EnteredReviewModeThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    review: str
    type: Literal["enteredReviewMode"] = Field(
        ..., title="EnteredReviewModeThreadItemType"
    )


class ExitedReviewModeThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    review: str
    type: Literal["exitedReviewMode"] = Field(
        ..., title="ExitedReviewModeThreadItemType"
    )


class ContextCompactionThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    type: Literal["contextCompaction"] = Field(
        ..., title="ContextCompactionThreadItemType"
    )


class ThreadResumeParams(BaseModel):
    approvalPolicy: Literal["untrusted", "on-request", "never"] | GranularAskForApproval | None = (
        None
    )
    approvalsReviewer: Literal["user", "auto_review", "guardian_subagent"] | None = (
        Field(
            None,
            description="Override where approval requests are routed for review on this thread and subsequent turns.",
        )
    )
    baseInstructions: str | None = None
    config: dict[str, Any] | None = None
    cwd: str | None = None
    developerInstructions: str | None = None
    excludeTurns: bool | None = Field(
        None,
        description="When true, return only thread metadata and live-resume state without populating `thread.turns`. This is useful when the client plans to call `thread/turns/list` immediately after resuming. Full-history hydration is deprecated for paginated threads; use this with `thread/turns/list` and `thread/items/list` instead.",
    )
    model: str | None = Field(
        None, description="Configuration overrides for the resumed thread, if any."
    )
    modelProvider: str | None = None
    personality: Literal["none", "friendly", "pragmatic"] | None = Field(
        None,
        description="@deprecated `friendly` and `pragmatic` no longer select a style. Changing this does not rewrite the thread's existing instructions.",
    )
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] | None = None
    serviceTier: str | None = None
    threadId: str


class ThreadSectionAppearance(BaseModel):
    color: str | None = None
    icon: str | None = None


class NotLoadedThreadStatus(BaseModel):
    type: Literal["notLoaded"] = Field(..., title="NotLoadedThreadStatusType")


class IdleThreadStatus(BaseModel):
    type: Literal["idle"] = Field(..., title="IdleThreadStatusType")


class SystemErrorThreadStatus(BaseModel):
    type: Literal["systemError"] = Field(..., title="SystemErrorThreadStatusType")


class ActiveThreadStatus(BaseModel):
    activeFlags: list[Literal["waitingOnApproval", "waitingOnUserInput"]]
    type: Literal["active"] = Field(..., title="ActiveThreadStatusType")


class TokenUsageBreakdown(BaseModel):
    cacheWriteInputTokens: int | None = 0
    cachedInputTokens: int
    inputTokens: int
    outputTokens: int
    reasoningOutputTokens: int
    totalTokens: int


class TurnInterruptParams(BaseModel):
    threadId: str
    turnId: str


class TurnInterruptResponse(BaseModel):
    pass


class TurnSteerResponse(BaseModel):
    turnId: str


class TextUserInput(BaseModel):
    text: str
    text_elements: list[TextElement] | None = Field(
        [],
        description="UI-defined spans within `text` used to render or persist special elements.",
        validate_default=True,
    )
    type: Literal["text"] = Field(..., title="TextUserInputType")


class UrlUserInput(BaseModel):
    detail: Literal["auto", "low", "high", "original"] | None = None
    type: Literal["image"] = Field(..., title="ImageUserInputType")
    url: str


class FileIdUserInput(BaseModel):
    detail: Literal["auto", "low", "high", "original"] | None = None
    type: Literal["image"] = Field(..., title="ImageUserInputType")
    fileId: str


class LocalImageUserInput(BaseModel):
    detail: Literal["auto", "low", "high", "original"] | None = None
    path: str
    type: Literal["localImage"] = Field(..., title="LocalImageUserInputType")


class UrlUserInput1(BaseModel):
    type: Literal["audio"] = Field(..., title="AudioUserInputType")
    url: str


class FileIdUserInput1(BaseModel):
    type: Literal["audio"] = Field(..., title="AudioUserInputType")
    fileId: str


class LocalAudioUserInput(BaseModel):
    path: str
    type: Literal["localAudio"] = Field(..., title="LocalAudioUserInputType")


class SkillUserInput(BaseModel):
    name: str
    path: str
    type: Literal["skill"] = Field(..., title="SkillUserInputType")


class MentionUserInput(BaseModel):
    name: str
    path: str
    type: Literal["mention"] = Field(..., title="MentionUserInputType")


class SearchWebSearchAction(BaseModel):
    queries: list[str] | None = None
    query: str | None = None
    type: Literal["search"] = Field(..., title="SearchWebSearchActionType")


class OpenPageWebSearchAction(BaseModel):
    type: Literal["openPage"] = Field(..., title="OpenPageWebSearchActionType")
    url: str | None = None


class FindInPageWebSearchAction(BaseModel):
    pattern: str | None = None
    type: Literal["findInPage"] = Field(..., title="FindInPageWebSearchActionType")
    url: str | None = None


class OtherWebSearchAction(BaseModel):
    type: Literal["other"] = Field(..., title="OtherWebSearchActionType")


class ActiveTurnNotSteerable(BaseModel):
    turnKind: Literal["review", "compact"]


class ActiveTurnNotSteerableCodexErrorInfo(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    activeTurnNotSteerable: ActiveTurnNotSteerable


class CollabAgentState(BaseModel):
    message: str | None = None
    status: Literal["pendingInit", "running", "interrupted", "completed", "errored", "shutdown", "notFound"]


class CollaborationMode(BaseModel):
    mode: Literal["plan", "default"] = Field(
        ..., description="Initial collaboration mode to use when the TUI starts."
    )
    settings: Settings


class ReadCommandAction(BaseModel):
    command: str
    name: str
    path: str
    type: Literal["read"] = Field(..., title="ReadCommandActionType")


class PathFileSystemPath(BaseModel):
    path: str
    type: Literal["path"] = Field(..., title="PathFileSystemPathType")


class KindFileSystemSpecialPath(BaseModel):
    kind: Literal["project_roots"]
    subpath: str | None = None


class FileSystemSpecialPath1(BaseModel):
    kind: Literal["unknown"]
    path: str
    subpath: str | None = None


class FileUpdateChange(BaseModel):
    diff: str
    kind: AddPatchChangeKind | DeletePatchChangeKind | UpdatePatchChangeKind
    path: str


class ImageUrlFunctionCallOutputContentItem(BaseModel):
    detail: Literal["auto", "low", "high", "original"] | None = None
    type: Literal["input_image"] = Field(
        ..., title="InputImageFunctionCallOutputContentItemType"
    )
    image_url: str


class FileIdFunctionCallOutputContentItem(BaseModel):
    detail: Literal["auto", "low", "high", "original"] | None = None
    type: Literal["input_image"] = Field(
        ..., title="InputImageFunctionCallOutputContentItemType"
    )
    file_id: str


class MemoryCitation(BaseModel):
    entries: list[MemoryCitationEntry]
    threadIds: list[str]


class MisalignmentErrorDetails(BaseModel):
    detailedExplanation: str | None = Field(
        None,
        description="A substantive localized explanation is required before offering continuation.",
    )
    errorType: str | None = Field(
        None,
        description="Open-ended classification; clients must accept categories added by Responses.",
    )
    reviewTarget: str | None = Field(
        None,
        description="Opaque server-issued block target. Presence alone does not enable target-based continuation.",
    )
    steer: MisalignmentSteer | None = Field(
        None,
        description="Instruction to submit as the next turn's user input if continuation is confirmed.",
    )


class NetworkApprovalContext(BaseModel):
    host: str
    protocol: Literal["http", "https", "socks5Tcp", "socks5Udp"]


class NetworkPolicyAmendment(BaseModel):
    action: Literal["allow", "deny"]
    host: str


class ThreadSpawn(BaseModel):
    agent_nickname: str | None = None
    agent_path: str | None = None
    agent_role: str | None = None
    depth: int
    parent_thread_id: str


class ThreadSpawnSubAgentSource(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    thread_spawn: ThreadSpawn


class UserMessageThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    clientId: str | None = None
    content: list[TextUserInput | LocalImageUserInput | LocalAudioUserInput | SkillUserInput | MentionUserInput | UrlUserInput | FileIdUserInput | UrlUserInput1 | FileIdUserInput1]
    id: str
    type: Literal["userMessage"] = Field(..., title="UserMessageThreadItemType")


class AgentMessageThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    delivery: Literal["async"] | None = None
    id: str
    memoryCitation: MemoryCitation | None = None
    moderation: AgentMessageModeration | None = None
    phase: Literal["commentary"] | Literal["partial_answer"] | Literal["final_answer"] | None = (
        None
    )
    questions: list[AsyncUserInputQuestion] | None = None
    text: str
    type: Literal["agentMessage"] = Field(..., title="AgentMessageThreadItemType")


class CommandExecutionThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    aggregatedOutput: str | None = Field(
        None, description="The command's output, aggregated from stdout and stderr."
    )
    command: str = Field(..., description="The command to be executed.")
    commandActions: list[ReadCommandAction | ListFilesCommandAction | SearchCommandAction | UnknownCommandAction] = (
        Field(
            ...,
            description="A best-effort parsing of the command to understand the action(s) it will perform. This returns a list of CommandAction objects because a single shell command may be composed of many commands piped together.",
        )
    )
    cwd: str = Field(..., description="The command's working directory.")
    durationMs: int | None = Field(
        None, description="The duration of the command execution in milliseconds."
    )
    exitCode: int | None = Field(None, description="The command's exit code.")
    id: str
    pluginId: str | None = Field(
        None,
        description="Trusted first-party plugin id when this command resolves to one plugin script.",
    )
    processId: str | None = Field(
        None, description="Identifier for the underlying PTY process (when available)."
    )
    scriptPath: str | None = Field(
        None,
        description="Safe plugin-relative path when this command resolves to one plugin script.",
    )
    source: (
        Literal["agent", "userShell", "unifiedExecStartup", "unifiedExecInteraction"]
        | None
    ) = "agent"
    status: Literal["inProgress", "completed", "failed", "declined"]
    type: Literal["commandExecution"] = Field(
        ..., title="CommandExecutionThreadItemType"
    )


class FileChangeThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    changes: list[FileUpdateChange]
    id: str
    status: Literal["inProgress", "completed", "failed", "declined"]
    type: Literal["fileChange"] = Field(..., title="FileChangeThreadItemType")


class CollabAgentToolCallThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    agentsStates: dict[str, CollabAgentState] = Field(
        ..., description="Last known status of the target agents, when available."
    )
    id: str = Field(..., description="Unique identifier for this collab tool call.")
    model: str | None = Field(
        None, description="Model requested for the spawned agent, when applicable."
    )
    prompt: str | None = Field(
        None,
        description="Prompt text sent as part of the collab tool call, when available.",
    )
    reasoningEffort: constr(min_length=1) | None = Field(
        None,
        description="Reasoning effort requested for the spawned agent, when applicable.",
    )
    receiverThreadIds: list[str] = Field(
        ...,
        description="Thread ID of the receiving agent, when applicable. In case of spawn operation, this corresponds to the newly spawned agent.",
    )
    senderThreadId: str = Field(
        ..., description="Thread ID of the agent issuing the collab request."
    )
    status: Literal["inProgress", "completed", "failed", "interrupted"] = (
        Field(..., description="Current status of the collab tool call.")
    )
    tool: Literal["spawnAgent", "sendInput", "resumeAgent", "wait", "closeAgent", "sendMessage", "followupTask", "interruptAgent", "listAgents"] = (
        Field(..., description="Name of the collab tool that was invoked.")
    )
    type: Literal["collabAgentToolCall"] = Field(
        ..., title="CollabAgentToolCallThreadItemType"
    )


class WebSearchThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    action: (
        SearchWebSearchAction
        | OpenPageWebSearchAction
        | FindInPageWebSearchAction
        | OtherWebSearchAction
        | None
    ) = None
    id: str
    query: str
    results: list[Any] | None = Field(
        None,
        description="Structured search results returned out-of-band by standalone web search.\n\nThese stay as opaque JSON at the extension/app-server boundary so new result fields and result types can pass through without a Codex release.",
    )
    type: Literal["webSearch"] = Field(..., title="WebSearchThreadItemType")


class ThreadSection(BaseModel):
    appearance: ThreadSectionAppearance | None = Field(
        None, description="Optional appearance synchronized across clients."
    )
    id: str = Field(
        ...,
        description="Opaque UUIDv7 identity that remains stable when the section is renamed.",
    )
    name: str = Field(..., description="The current user-visible section name.")


class ThreadStartParams(BaseModel):
    approvalPolicy: Literal["untrusted", "on-request", "never"] | GranularAskForApproval | None = (
        None
    )
    approvalsReviewer: Literal["user", "auto_review", "guardian_subagent"] | None = (
        Field(
            None,
            description="Override where approval requests are routed for review on this thread and subsequent turns.",
        )
    )
    baseInstructions: str | None = None
    config: dict[str, Any] | None = None
    cwd: str | None = None
    developerInstructions: str | None = None
    ephemeral: bool | None = None
    model: str | None = None
    modelProvider: str | None = None
    personality: Literal["none", "friendly", "pragmatic"] | None = Field(
        None,
        description="@deprecated `friendly` and `pragmatic` no longer select a style.",
    )
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] | None = None
    serviceName: str | None = None
    serviceTier: str | None = None
    sessionStartSource: Literal["startup", "clear"] | None = None
    threadSource: str | None = Field(
        None,
        description="Optional client-supplied analytics source classification for this thread.",
    )


class ThreadTokenUsage(BaseModel):
    last: TokenUsageBreakdown
    modelContextWindow: int | None = None
    total: TokenUsageBreakdown


class ThreadTokenUsageUpdatedNotification(BaseModel):
    threadId: str
    tokenUsage: ThreadTokenUsage
    turnId: str


class TurnError(BaseModel):
    additionalDetails: str | None = None
    codexErrorInfo: Literal["contextWindowExceeded", "sessionBudgetExceeded", "usageLimitExceeded", "rateLimitExceeded", "flexUnavailable", "serverOverloaded", "modelNotFound", "policyCapacityUnavailable", "cyberPolicy", "misalignmentPolicyViolation", "tooManyDenials", "internalServerError", "unauthorized", "badRequest", "threadRollbackFailed", "sandboxError", "other"] | Literal["inferenceHookDenied"] | HttpConnectionFailedCodexErrorInfo | ResponseStreamConnectionFailedCodexErrorInfo | ResponseStreamDisconnectedCodexErrorInfo | ResponseTooManyFailedAttemptsCodexErrorInfo | ActiveTurnNotSteerableCodexErrorInfo | str | dict[str, Any] | None = (
        None
    )
    message: str
    misalignment: MisalignmentErrorDetails | None = Field(
        None,
        description="Optional public explanation and continuation instruction for a misalignment block.",
    )


class TurnPlanStep(BaseModel):
    status: Literal["pending", "inProgress", "completed"]
    step: str


class TurnPlanUpdatedNotification(BaseModel):
    explanation: str | None = None
    plan: list[TurnPlanStep]
    threadId: str
    turnId: str


class TurnSteerParams(BaseModel):
    clientUserMessageId: str | None = None
    expectedTurnId: str = Field(
        ...,
        description="Required active turn id precondition. The request fails when it does not match the currently active turn.",
    )
    input: list[TextUserInput | LocalImageUserInput | LocalAudioUserInput | SkillUserInput | MentionUserInput | UrlUserInput | FileIdUserInput | UrlUserInput1 | FileIdUserInput1]
    threadId: str


class ApplyNetworkPolicyAmendment(BaseModel):
    network_policy_amendment: NetworkPolicyAmendment


class ApplyNetworkPolicyAmendmentCommandExecutionApprovalDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    applyNetworkPolicyAmendment: ApplyNetworkPolicyAmendment


class CommandExecutionRequestApprovalParams(BaseModel):
    approvalId: str | None = Field(
        None,
        description="Unique identifier for this specific approval callback.\n\nFor regular shell/unified_exec approvals, this is null.\n\nFor zsh-exec-bridge subcommand approvals, multiple callbacks can belong to one parent `itemId`, so `approvalId` is a distinct opaque callback id (a UUID) used to disambiguate routing. Stdin approvals also use a distinct callback id; inspect `kind` to distinguish them.",
    )
    command: str | None = Field(None, description="The command to be executed.")
    commandActions: (
        list[
            ReadCommandAction | ListFilesCommandAction | SearchCommandAction | UnknownCommandAction
        ]
        | None
    ) = Field(None, description="Best-effort parsed command actions for friendly display.")
    cwd: str | None = Field(None, description="The command's working directory.")
    environmentId: str | None = Field(
        None, description="Environment in which the command will run."
    )
    itemId: str
    kind: Literal["command", "writeStdin"] | Literal["humanCommand"] | None = Field(
        "command",
        description="Kind of action under review. Defaults to `command` for older servers.",
    )
    networkApprovalContext: NetworkApprovalContext | None = Field(
        None, description="Optional context for a managed-network approval prompt."
    )
    proposedExecpolicyAmendment: list[str] | None = Field(
        None,
        description="Optional proposed execpolicy amendment to allow similar commands without prompting.",
    )
    proposedNetworkPolicyAmendments: list[NetworkPolicyAmendment] | None = Field(
        None,
        description="Optional proposed network policy amendments (allow/deny host) for future requests.",
    )
    reason: str | None = Field(
        None,
        description="Optional explanatory reason (e.g. request for network access).",
    )
    startedAtMs: int = Field(
        ...,
        description="Unix timestamp (in milliseconds) when this approval request started.",
    )
    threadId: str
    turnId: str


class CommandExecutionRequestApprovalResponse(BaseModel):
    decision: Literal["accept"] | Literal["acceptForSession"] | AcceptWithExecpolicyAmendmentCommandExecutionApprovalDecision | ApplyNetworkPolicyAmendmentCommandExecutionApprovalDecision | Literal["decline"] | Literal["cancel"]


class ErrorNotification(BaseModel):
    error: TurnError
    threadId: str
    turnId: str
    willRetry: bool


class SpecialFileSystemPath(BaseModel):
    type: Literal["special"] = Field(..., title="SpecialFileSystemPathType")
    value: RootFileSystemSpecialPath | MinimalFileSystemSpecialPath | KindFileSystemSpecialPath | TmpdirFileSystemSpecialPath | SlashTmpFileSystemSpecialPath | FileSystemSpecialPath1


class FileSystemSandboxEntry(BaseModel):
    access: Literal["read", "write", "deny"]
    path: PathFileSystemPath | GlobPatternFileSystemPath | SpecialFileSystemPath


class SubAgentSessionSource(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    subAgent: Literal["review", "compact", "memory_consolidation"] | ThreadSpawnSubAgentSource | OtherSubAgentSource


class FunctionCallOutputThreadItem(BaseModel):
    completedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item completed, if recorded.",
    )
    startedAtMs: int | None = Field(
        None,
        description="Unix timestamp in milliseconds when the item started, if recorded.",
    )
    id: str
    name: str
    namespace: str | None = None
    output: str | list[InputTextFunctionCallOutputContentItem | EncryptedContentFunctionCallOutputContentItem | ImageUrlFunctionCallOutputContentItem | FileIdFunctionCallOutputContentItem | AudioUrlFunctionCallOutputContentItem | FileIdFunctionCallOutputContentItem1]
    type: Literal["functionCallOutput"] = Field(
        ..., title="FunctionCallOutputThreadItemType"
    )


class Turn(BaseModel):
    completedAt: int | None = Field(
        None, description="Unix timestamp (in seconds) when the turn completed."
    )
    durationMs: int | None = Field(
        None,
        description="Duration between turn start and completion in milliseconds, if known.",
    )
    error: TurnError | None = Field(
        None, description="Error associated with a failed or interrupted turn."
    )
    id: str = Field(
        ...,
        description="Identifier for this turn. Codex-generated turn IDs are UUIDv7.",
    )
    items: list[UserMessageThreadItem | HookPromptThreadItem | AgentMessageThreadItem | FunctionCallOutputThreadItem | PlanThreadItem | ReasoningThreadItem | CommandExecutionThreadItem | FileChangeThreadItem | McpToolCallThreadItem | DynamicToolCallThreadItem | CollabAgentToolCallThreadItem | SubAgentActivityThreadItem | WebSearchThreadItem | ImageViewThreadItem | SleepThreadItem | EnteredReviewModeThreadItem | ExitedReviewModeThreadItem | ContextCompactionThreadItem | FileIdThreadItem | ResultThreadItem] = (
        Field(..., description="Thread items currently included in this turn payload.")
    )
    itemsView: Literal["notLoaded"] | Literal["summary"] | Literal["full"] | None = (
        Field(
            "full",
            description="Describes how much of `items` has been loaded for this turn.",
        )
    )
    rootTurnId: str | None = Field(
        None,
        description="ID of the first turn in the chain of work that led to this turn. Pass this as `rootTurnId` when starting work on behalf of this turn. May be null in older history or a `review/start` response.",
    )
    startedAt: int | None = Field(
        None, description="Unix timestamp (in seconds) when the turn started."
    )
    status: Literal["completed", "interrupted", "failed", "inProgress"]


class TurnCompletedNotification(BaseModel):
    threadId: str
    turn: Turn


class TurnStartResponse(BaseModel):
    turn: Turn


class TurnStartedNotification(BaseModel):
    threadId: str
    turn: Turn


class TurnToolOutput(BaseModel):
    name: str
    namespace: str | None = None
    output: str | list[InputTextFunctionCallOutputContentItem | EncryptedContentFunctionCallOutputContentItem | ImageUrlFunctionCallOutputContentItem | FileIdFunctionCallOutputContentItem | AudioUrlFunctionCallOutputContentItem | FileIdFunctionCallOutputContentItem1]
    retain: bool | None = Field(
        None,
        description="Requests retention of this output in the thread's model history.",
    )


class AdditionalFileSystemPermissions(BaseModel):
    entries: list[FileSystemSandboxEntry] | None = None
    globScanMaxDepth: conint(ge=1) | None = None
    read: list[str] | None = Field(
        None, description="This will be removed in favor of `entries`."
    )
    write: list[str] | None = Field(
        None, description="This will be removed in favor of `entries`."
    )


class GrantedPermissionProfile(BaseModel):
    fileSystem: AdditionalFileSystemPermissions | None = None
    network: AdditionalNetworkPermissions | None = None


class ItemCompletedNotification(BaseModel):
    completedAtMs: int = Field(
        ...,
        description="Unix timestamp (in milliseconds) when this item lifecycle completed.",
    )
    contentTokenCount: conint(ge=0) | None = Field(
        None,
        description="Native content tokens for the completed assistant message, including a sampled footer. Null when unavailable. Completion telemetry is not part of the stored thread item.",
    )
    item: (
        UserMessageThreadItem
        | HookPromptThreadItem
        | AgentMessageThreadItem
        | FunctionCallOutputThreadItem
        | PlanThreadItem
        | ReasoningThreadItem
        | CommandExecutionThreadItem
        | FileChangeThreadItem
        | McpToolCallThreadItem
        | DynamicToolCallThreadItem
        | CollabAgentToolCallThreadItem
        | SubAgentActivityThreadItem
        | WebSearchThreadItem
        | ImageViewThreadItem
        | SleepThreadItem
        | EnteredReviewModeThreadItem
        | ExitedReviewModeThreadItem
        | ContextCompactionThreadItem
        | FileIdThreadItem
        | ResultThreadItem
    ) = Field(..., description="A thread item and its recorded lifecycle times. The payload stays flat on the wire.")
    threadId: str
    turnId: str


class ItemStartedNotification(BaseModel):
    item: (
        UserMessageThreadItem
        | HookPromptThreadItem
        | AgentMessageThreadItem
        | FunctionCallOutputThreadItem
        | PlanThreadItem
        | ReasoningThreadItem
        | CommandExecutionThreadItem
        | FileChangeThreadItem
        | McpToolCallThreadItem
        | DynamicToolCallThreadItem
        | CollabAgentToolCallThreadItem
        | SubAgentActivityThreadItem
        | WebSearchThreadItem
        | ImageViewThreadItem
        | SleepThreadItem
        | EnteredReviewModeThreadItem
        | ExitedReviewModeThreadItem
        | ContextCompactionThreadItem
        | FileIdThreadItem
        | ResultThreadItem
    ) = Field(..., description="A thread item and its recorded lifecycle times. The payload stays flat on the wire.")
    startedAtMs: int = Field(
        ...,
        description="Unix timestamp (in milliseconds) when this item lifecycle started.",
    )
    threadId: str
    turnId: str


class PermissionsRequestApprovalResponse(BaseModel):
    permissions: GrantedPermissionProfile
    scope: Literal["turn", "session"] | None = "turn"
    strictAutoReview: bool | None = Field(
        None,
        description="Review every subsequent command in this turn before normal sandboxed execution.",
    )


class RequestPermissionProfile(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    fileSystem: AdditionalFileSystemPermissions | None = None
    network: AdditionalNetworkPermissions | None = None


class Thread(BaseModel):
    agentNickname: str | None = Field(
        None,
        description="Optional random unique nickname assigned to an AgentControl-spawned sub-agent.",
    )
    agentRole: str | None = Field(
        None,
        description="Optional role (agent_role) assigned to an AgentControl-spawned sub-agent.",
    )
    cliVersion: str = Field(
        ..., description="Version of the CLI that created the thread."
    )
    createdAt: int = Field(
        ..., description="Unix timestamp (in seconds) when the thread was created."
    )
    cwd: str = Field(..., description="Working directory captured for the thread.")
    ephemeral: bool = Field(
        ...,
        description="Whether the thread is ephemeral and should not be materialized on disk.",
    )
    forkedFromId: str | None = Field(
        None,
        description="Source thread id when this thread was created by forking another thread.",
    )
    gitInfo: GitInfo | None = Field(
        None, description="Optional Git metadata captured when the thread was created."
    )
    historyMode: Literal["legacy", "paginated"] | None = Field(
        "legacy",
        description="Persisted thread history contract selected when this thread was created.",
    )
    id: str = Field(
        ...,
        description="Identifier for this thread. Codex-generated thread IDs are UUIDv7.",
    )
    model: str | None = Field(
        None,
        description="Current configured model when loaded, otherwise the latest persisted model. Null when unavailable. This is not per-turn execution telemetry.",
    )
    modelProvider: str = Field(
        ..., description="Model provider used for this thread (for example, 'openai')."
    )
    name: str | None = Field(None, description="Optional user-facing thread title.")
    originator: str | None = Field(
        None,
        description="Originator recorded when the thread was created, independent of its current client or executor. Null when the recorded originator is unavailable.",
    )
    parentThreadId: str | None = Field(
        None,
        description="The ID of the parent thread. This will only be set if this thread is a subagent.",
    )
    path: str | None = Field(None, description="[UNSTABLE] Path to the thread on disk.")
    preview: str = Field(
        ..., description="Usually the first user message in the thread, if available."
    )
    projectId: str | None = Field(
        ..., description="Canonical project assignment owned by app-server, if any."
    )
    reasoningEffort: constr(min_length=1) | None = Field(
        None,
        description="Current configured reasoning effort when loaded, otherwise the latest persisted effort. Null when unset or unavailable. This is not per-turn execution telemetry.",
    )
    recencyAt: int | None = Field(
        None,
        description="Unix timestamp (in seconds) used for thread recency ordering.",
    )
    section: ThreadSection | None = Field(
        None,
        description="The independently persisted section selected for this thread, if any.",
    )
    sectionEnteredAt: int | None = Field(
        None,
        description="Unix timestamp in seconds when the thread entered its current section.",
    )
    sessionId: str = Field(
        ...,
        description="Session id shared by threads that belong to the same session tree.",
    )
    source: (
        Literal["cli", "vscode", "exec", "appServer", "unknown"]
        | CustomSessionSource
        | SubAgentSessionSource
    ) = Field(..., description="Origin of the thread (CLI, VSCode, codex exec, codex app-server, etc.).")
    status: (
        NotLoadedThreadStatus
        | IdleThreadStatus
        | SystemErrorThreadStatus
        | ActiveThreadStatus
    ) = Field(..., description="Current runtime status for the thread.")
    threadSource: str | None = Field(
        None, description="Optional analytics source classification for this thread."
    )
    turns: list[Turn] = Field(
        ...,
        description="Only populated on `thread/resume`, `thread/fork`, and `thread/read` (when `includeTurns` is true) responses. For all other responses and notifications returning a Thread, the turns field will be an empty list.",
    )
    updatedAt: int = Field(
        ..., description="Unix timestamp (in seconds) when the thread was last updated."
    )


class ThreadResumeResponse(BaseModel):
    approvalPolicy: Literal["untrusted", "on-request", "never"] | GranularAskForApproval
    approvalsReviewer: Literal["user", "auto_review", "guardian_subagent"] = (
        Field(
            ...,
            description="Reviewer currently used for approval requests on this thread.",
        )
    )
    collaborationMode: CollaborationMode | None = Field(
        None,
        description="Effective collaboration mode. Absent when resuming from an older server.",
    )
    cwd: str = Field(
        ...,
        description="A path that is guaranteed to be absolute and normalized (though it is not guaranteed to be canonicalized or exist on the filesystem).\n\nIMPORTANT: When deserializing an `AbsolutePathBuf`, a base path must be set using [AbsolutePathBufGuard::new]. If no base path is set, the deserialization will fail unless the path being deserialized is already absolute.",
    )
    disabledPluginIds: list[str] | None = Field(
        [],
        description="Saved list of disabled plugin IDs. Does not yet filter plugin capabilities.",
    )
    instructionSources: list[str] | None = Field(
        [],
        description="Environment-native paths to instruction source files currently loaded for this thread.",
    )
    itemsBackwardsCursor: str | None = Field(
        None,
        description='Opaque cursor for hydrating paginated items backwards.\n\nPass this as `cursor` to `thread/items/list` with `sortDirection: "desc"`. The first page includes the item identified by the cursor.',
    )
    model: str
    modelProvider: str
    reasoningEffort: constr(min_length=1) | None = None
    sandbox: (
        DangerFullAccessSandboxPolicy
        | ReadOnlySandboxPolicy
        | ExternalSandboxSandboxPolicy
        | WorkspaceWriteSandboxPolicy
    ) = Field(..., description="Legacy sandbox policy retained for compatibility. Experimental clients should prefer `activePermissionProfile` for profile provenance.")
    serviceTier: str | None = None
    thread: Thread
    turnsBackwardsCursor: str | None = Field(
        None,
        description='Opaque cursor for hydrating paginated turns backwards.\n\nPass this as `cursor` to `thread/turns/list` with `sortDirection: "desc"`. The first page includes the turn identified by the cursor.',
    )


class ThreadStartResponse(BaseModel):
    approvalPolicy: Literal["untrusted", "on-request", "never"] | GranularAskForApproval
    approvalsReviewer: Literal["user", "auto_review", "guardian_subagent"] = (
        Field(
            ...,
            description="Reviewer currently used for approval requests on this thread.",
        )
    )
    cwd: str = Field(
        ...,
        description="A path that is guaranteed to be absolute and normalized (though it is not guaranteed to be canonicalized or exist on the filesystem).\n\nIMPORTANT: When deserializing an `AbsolutePathBuf`, a base path must be set using [AbsolutePathBufGuard::new]. If no base path is set, the deserialization will fail unless the path being deserialized is already absolute.",
    )
    disabledPluginIds: list[str] | None = Field(
        [],
        description="Saved list of disabled plugin IDs. Does not yet filter plugin capabilities.",
    )
    instructionSources: list[str] | None = Field(
        [],
        description="Environment-native paths to instruction source files currently loaded for this thread.",
    )
    model: str
    modelProvider: str
    reasoningEffort: constr(min_length=1) | None = None
    sandbox: (
        DangerFullAccessSandboxPolicy
        | ReadOnlySandboxPolicy
        | ExternalSandboxSandboxPolicy
        | WorkspaceWriteSandboxPolicy
    ) = Field(..., description="Legacy sandbox policy retained for compatibility. Experimental clients should prefer `activePermissionProfile` for profile provenance.")
    serviceTier: str | None = None
    thread: Thread


class TurnStartParams(BaseModel):
    approvalPolicy: (
        Literal["untrusted", "on-request", "never"] | GranularAskForApproval | None
    ) = Field(None, description="Override the approval policy for this turn and subsequent turns.")
    approvalsReviewer: Literal["user", "auto_review", "guardian_subagent"] | None = (
        Field(
            None,
            description="Override where approval requests are routed for review on this turn and subsequent turns.",
        )
    )
    clientUserMessageId: str | None = None
    cwd: str | None = Field(
        None,
        description="Override the working directory for this turn and subsequent turns.",
    )
    disabledPluginIds: list[str] | None = Field(
        None,
        description="Replace this thread's disabled plugin IDs. Omitted/null preserves the list; [] clears it.",
    )
    effort: constr(min_length=1) | None = Field(
        None,
        description="Override the reasoning effort for this turn and subsequent turns.",
    )
    input: list[TextUserInput | LocalImageUserInput | LocalAudioUserInput | SkillUserInput | MentionUserInput | UrlUserInput | FileIdUserInput | UrlUserInput1 | FileIdUserInput1]
    model: str | None = Field(
        None, description="Override the model for this turn and subsequent turns."
    )
    outputSchema: Any | None = Field(
        None,
        description="Optional JSON Schema used to constrain the final assistant message for this turn.",
    )
    parentTurnId: str | None = Field(
        None,
        description="ID of the turn that caused this new turn to start.\n\nSet this when starting work on behalf of another turn, such as delegated work in a different thread. Leave unset for work started directly by the user. Ignored when this request adds input to an active turn.",
    )
    personality: Literal["none", "friendly", "pragmatic"] | None = Field(
        None,
        description="@deprecated `friendly` and `pragmatic` no longer select a style. Changing this does not rewrite the thread's existing instructions.",
    )
    rootTurnId: str | None = Field(
        None,
        description="ID of the first turn in the chain of work that led to this new turn.\n\nWhen setting `parentTurnId`, set this to the parent turn's `rootTurnId` when known. This keeps descendant work attributed to the original turn. If omitted, the new turn becomes its own root. Ignored when this request adds input to an active turn.",
    )
    sandboxPolicy: (
        DangerFullAccessSandboxPolicy
        | ReadOnlySandboxPolicy
        | ExternalSandboxSandboxPolicy
        | WorkspaceWriteSandboxPolicy
        | None
    ) = Field(None, description="Override the sandbox policy for this turn and subsequent turns.")
    serviceTier: str | None = Field(
        None,
        description="Override the service tier for this turn and subsequent turns.",
    )
    serviceTierForTurn: str | None = Field(
        None,
        description='Override the service tier only when this request starts a new turn. Use "default" for standard speed. Omitted or null inherits the thread\'s tier. Does not change the thread\'s tier or a turn being steered.',
    )
    summary: Literal["auto", "concise", "detailed"] | Literal["none"] | None = Field(
        None,
        description="Override the reasoning summary for this turn and subsequent turns.",
    )
    threadId: str
    toolOutput: TurnToolOutput | None = None
    turnTrigger: str | None = Field(
        None,
        description="Optional source classification for the caller that starts this turn. Ignored when this request steers an already-active turn.",
    )


class PermissionsRequestApprovalParams(BaseModel):
    cwd: str
    environmentId: str | None = None
    itemId: str
    permissions: RequestPermissionProfile
    reason: str | None = None
    startedAtMs: int = Field(
        ...,
        description="Unix timestamp (in milliseconds) when this approval request started.",
    )
    threadId: str
    turnId: str

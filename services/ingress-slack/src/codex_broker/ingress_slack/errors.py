"""How a Slack Web API error is handled: retry, wait, learn a capability, or give up. Pure."""

from __future__ import annotations

from typing import Literal

from codex_broker.libs.ingress_kit.platform import PlatformError

Verdict = Literal["ratelimited", "transient", "refused", "permanent"]

# The method exists but this app/workspace may not use it: learn it once, use the fallback.
REFUSED = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "method_deprecated",
        "feature_not_enabled",
        "not_enabled",
        "team_not_allowed",
        "access_denied",
        "no_permission",
        "invalid_arguments",  # older workspaces reject the streaming/assistant argument shapes
    }
)

# Slack-side hiccups worth retrying with backoff.
TRANSIENT = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
        "http_error",
        "connection_error",
        "upload_failed",
    }
)

# Errors with a readable name in metrics; anything else is counted as "other" (bounded labels).
KNOWN_ERRORS = (
    REFUSED
    | TRANSIENT
    | frozenset(
        {
            "ratelimited",
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "account_inactive",
            "token_revoked",
            "is_archived",
            "msg_too_long",
            "no_text",
            "invalid_blocks",
            "message_not_found",
            "cant_update_message",
            "edit_window_closed",
            "thread_not_found",
            "user_not_found",
            "already_reacted",
            "no_reaction",
            "invalid_name",
            "expired_trigger_id",
            "invalid_trigger_id",
            "file_not_found",
            "too_large",
            "invalid_ts",
            "message_not_in_streaming_state",
            "streaming_state_conflict",
            "download_failed",
            "other",
        }
    )
)


def classify(error: str, status: int | None = None) -> Verdict:
    if status == 429 or error == "ratelimited":
        return "ratelimited"
    if error in TRANSIENT or (status is not None and status >= 500):
        return "transient"
    if error in REFUSED:
        return "refused"
    return "permanent"


def metric_error(error: str) -> str:
    return error if error in KNOWN_ERRORS else "other"


class SlackCallError(PlatformError):
    """A Web API call that finally failed (after retries for the retryable kinds). A
    `PlatformError`, so the ingress kit applies its failure policy to it as it is."""

    def __init__(self, method: str, error: str, verdict: Verdict, *, retry_after_s: float | None = None):
        super().__init__(error, permanent=verdict in ("permanent", "refused"), method=method)
        self.verdict = verdict
        self.retry_after_s = retry_after_s

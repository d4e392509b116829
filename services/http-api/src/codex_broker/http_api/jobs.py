"""Background job records and the pure rules around them (no I/O here).

A job is a hash `keys.job(id)` plus an entry in `keys.jobs_index` (score = created ms). The
http-api creates it; the rq worker runs it; callbacks and the worker's own reports become
InboundEvents of kind `job_callback` (event id `job:<id>:<seq>`) on the session's shard.
Job tokens are made by the worker for each attempt and only their sha256 is stored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from codex_broker.libs.contracts import Actor, InboundEvent, JobCallback, encode

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled"})
STATUSES = ("queued", "running", "completed", "failed", "timeout", "cancelled")
SUMMARY_MAX = 4000
DETAILS_MAX = 20_000


@dataclass
class JobRecord:
    id: str
    session_key: str
    platform: str
    conversation_id: str
    root_message_id: str
    kind: str
    script: str
    cwd: str
    workspace: str
    restart_on_boot: bool
    timeout_s: int
    status: str = "queued"
    created_at_ms: int = 0
    enqueued_at_ms: int = 0
    first_started_at_ms: int = 0
    started_at_ms: int = 0
    finished_at_ms: int = 0
    heartbeat_at_ms: int = 0
    worker_seen_at_ms: int = 0
    worker: str = ""
    host: str = ""
    pgid: int = 0
    attempts: int = 0
    seq: int = 0
    token_sha256: str = ""
    cancel_requested: bool = False
    exit_code: int | None = None
    summary: str = ""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def rq_job_id(self) -> str:
        return f"{self.id}-{self.attempts}"

    def deadline_ms(self) -> int | None:
        if not self.first_started_at_ms:
            return None
        return self.first_started_at_ms + self.timeout_s * 1000


_BOOL = {"restart_on_boot", "cancel_requested"}
_INT = {
    "timeout_s",
    "created_at_ms",
    "enqueued_at_ms",
    "first_started_at_ms",
    "started_at_ms",
    "finished_at_ms",
    "heartbeat_at_ms",
    "worker_seen_at_ms",
    "pgid",
    "attempts",
    "seq",
}


def to_hash(record: JobRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in asdict(record).items():
        if value is None:
            continue
        out[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def from_hash(raw: dict[Any, Any]) -> JobRecord | None:
    data = {_s(k): _s(v) for k, v in raw.items()}
    if "id" not in data or "session_key" not in data:
        return None
    values: dict[str, Any] = {}
    for f in fields(JobRecord):
        if f.name not in data:
            continue
        text = data[f.name]
        if f.name in _BOOL:
            values[f.name] = text == "1"
        elif f.name in _INT:
            values[f.name] = int(text or 0)
        elif f.name == "exit_code":
            values[f.name] = int(text) if text.lstrip("-").isdigit() else None
        else:
            values[f.name] = text
    try:
        return JobRecord(**values)
    except TypeError:
        return None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def public_view(record: JobRecord, output_tail: str | None = None) -> dict[str, Any]:
    """What GET /jobs/{id} shows: no script body, no token hash, no host internals."""
    view = {
        "jobId": record.id,
        "kind": record.kind,
        "status": record.status,
        "platform": record.platform,
        "conversationId": record.conversation_id,
        "rootMessageId": record.root_message_id,
        "cwd": record.cwd,
        "restartOnBoot": record.restart_on_boot,
        "timeoutSeconds": record.timeout_s,
        "attempts": record.attempts,
        "createdAtMs": record.created_at_ms,
        "startedAtMs": record.started_at_ms or None,
        "finishedAtMs": record.finished_at_ms or None,
        "heartbeatAtMs": record.heartbeat_at_ms or None,
        "exitCode": record.exit_code,
        "summary": record.summary,
        "cancelRequested": record.cancel_requested,
    }
    if output_tail is not None:
        view["outputTail"] = output_tail
    return view


def report_text(record: JobRecord, status: str, summary: str) -> str:
    """The text the orchestrator shows Codex when a callback starts a turn."""
    head = f"Background job {record.id} ({record.kind}) reported {status}"
    return f"{head}: {summary}" if summary else head


def callback_event(record: JobRecord, status: str, seq: int, summary: str, details: Any) -> InboundEvent:
    return InboundEvent(
        event_id=f"job:{record.id}:{seq}",
        platform=record.platform,  # type: ignore[arg-type]
        conversation_id=record.conversation_id,
        root_message_id=record.root_message_id,
        kind="job_callback",
        actor=Actor(id=f"job:{record.id}", display_name=f"job {record.kind}", is_bot=True),
        text=report_text(record, status, summary),
        job=JobCallback(job_id=record.id, status=status, summary=summary[:SUMMARY_MAX], details=details),  # type: ignore[arg-type]
    )


def encoded_callback(record: JobRecord, status: str, seq: int, summary: str, details: Any) -> str:
    return encode(callback_event(record, status, seq, summary, details))


def bounded_details(details: Any) -> Any:
    """Details travel in a stream entry: keep them small, or replace them by a note."""
    if details is None:
        return None
    text = json.dumps(details, default=str)
    if len(text) <= DETAILS_MAX:
        return details
    return {"truncated": True, "json_prefix": text[:DETAILS_MAX]}


def orphan_action(record: JobRecord, now: int, stale_after_ms: int, rq_state: str | None) -> str:
    """What recovery does with a live job: none | requeue | timeout | fail | cancel (pure).

    A running job is orphaned when its worker has not touched it for `stale_after_ms` (the
    worker died); a queued one when rq no longer holds a runnable job for it.
    """
    if record.status == "running":
        orphaned = now - max(record.worker_seen_at_ms, record.started_at_ms) > stale_after_ms
    elif record.status == "queued":
        settled = now - max(record.enqueued_at_ms, record.created_at_ms) > stale_after_ms
        orphaned = settled and rq_state in (None, "failed", "stopped", "canceled")
    else:
        return "none"
    if not orphaned:
        return "none"
    if record.cancel_requested:
        return "cancel"
    deadline = record.deadline_ms()
    if deadline is not None and now >= deadline:
        return "timeout"
    return "requeue" if record.restart_on_boot else "fail"

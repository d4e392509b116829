"""Typed records for the hashes services share: each model owns its hash's encoding.

A hash is read as `Model.from_hash(raw)` (bytes or str keys and values, missing fields take their
defaults) and written as `model.to_hash()` or, for a change, `changes(before, after)` — the HSET
mapping and the HDEL fields that turn one into the other. No caller spells a field name or an
encoding ("1"/"0", milliseconds as decimal strings) of its own; a field another service adds
(`codex_state*`, written by the http-api) is a field of the model too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, get_args

from codex_broker.libs.contracts import Coordinates

Phase = Literal["idle", "debouncing", "running"]
PHASES: tuple[str, ...] = get_args(Phase)

R = TypeVar("R", bound="HashRecord")
EXTRA = "extra"  # the field of a record that keeps the hash's per-item fields (approval:<id> …)


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(annotation: Any, raw: str) -> Any:
    """`annotation` is the field's type as written (a string: annotations are postponed)."""
    if annotation == "bool":
        return raw == "1"
    if annotation in ("int", "int | None"):
        try:
            return int(raw)
        except ValueError:  # a hand-edited or foreign value is absent, never a crash
            return 0 if annotation == "int" else None
    return raw


def _encode(value: Any) -> str | None:
    """None: the field is absent from the hash."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else None  # a false flag is no field at all (as HDEL leaves it)
    return str(value)


@dataclass(frozen=True)
class HashRecord:
    """Base: field names are the hash's field names; `None`, `False` and "" mean "absent"."""

    @classmethod
    def from_hash(cls: type[R], raw: Mapping[Any, Any] | None) -> R:
        values = {text_of(k): text_of(v) for k, v in (raw or {}).items()}
        kwargs: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for f in fields(cls):
            if f.name in values and f.name != EXTRA:
                kwargs[f.name] = _decode(f.type, values[f.name])
        if EXTRA in names:  # a record with per-item fields keeps them, read-only
            kwargs[EXTRA] = {k: v for k, v in values.items() if k not in names}
        return cls(**kwargs)

    def to_hash(self) -> dict[str, str]:
        encoded = ((f.name, _encode(getattr(self, f.name))) for f in fields(self) if f.name != EXTRA)
        return {name: value for name, value in encoded if value not in (None, "")}

    @classmethod
    def encode_fields(cls, **values: Any) -> dict[str, str]:
        """An HSET mapping of some of the record's fields, for a writer that owns only those (a
        name the record does not have is a bug: KeyError)."""
        known = {f.name for f in fields(cls)} - {EXTRA}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"{cls.__name__} has no field {sorted(unknown)}")
        encoded = {name: _encode(value) for name, value in values.items()}
        return {name: value for name, value in encoded.items() if value is not None}

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)


def changes(before: HashRecord, after: HashRecord) -> tuple[dict[str, str], list[str]]:
    """(HSET mapping, HDEL fields) that turn the stored `before` into `after`."""
    old, new = before.to_hash(), after.to_hash()
    mapping = {name: value for name, value in new.items() if old.get(name) != value}
    removed = [name for name in old if name not in new]
    return mapping, removed


@dataclass(frozen=True)
class TurnState(HashRecord):
    """`session-state:<key>`: where the session's turn lifecycle stands (orchestrator/machine.py
    decides every change of the first block; the http-api records what Codex said about it)."""

    state: str = "idle"  # a Phase; kept as stored so that an unknown value is seen, not hidden
    active_run_id: str = ""
    turn_active: bool = False  # the runner reported turn_started: a message can steer
    waiting: bool = False  # in the MAX_ACTIVE_RUNS line for a run slot
    run_started_ms: int | None = None
    last_final_action: str = ""  # the thread's latest answer action: the next one waits for it
    # written by the http-api when Codex posts or reports through the local API
    codex_final_posted_run: str = ""
    codex_state: str = ""
    codex_state_reason: str = ""
    codex_state_run: str = ""
    codex_state_at_ms: int | None = None

    @staticmethod
    def final_posted(run_id: str) -> dict[Any, Any]:
        """The http-api's write when Codex posted the run's answer itself (HSET mapping)."""
        return {"codex_final_posted_run": run_id}

    @staticmethod
    def codex_report(kind: str, reason: str, *, run_id: str, at_ms: int) -> dict[Any, Any]:
        """The http-api's write when Codex reports its state (blocked, done …) for the run."""
        return {
            "codex_state": kind,
            "codex_state_reason": reason[:2000],
            "codex_state_run": run_id,
            "codex_state_at_ms": str(at_ms),
        }

    @property
    def phase(self) -> Phase:
        return self.state if self.state in PHASES else "idle"  # type: ignore[return-value]

    @property
    def running(self) -> bool:
        return self.phase == "running"


@dataclass(frozen=True)
class SessionRecord(HashRecord):
    """`session:<key>`: one chat thread's session (written by the orchestrator when the thread's
    first message arrives; the http-api's admin and job routes read it)."""

    platform: str = ""
    conversation_id: str = ""
    root_message_id: str = ""
    workspace: str = ""
    auth_profile: str = ""
    status: str = "active"  # active | resumable (its last run was reported lost)
    is_direct: bool = False
    created_at_ms: int | None = None
    last_activity_ms: int | None = None
    epoch: int = 0  # bumped by /new and /cd: a run started before keeps no thread for later
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    thread_id: str = ""  # the Codex thread the next turn resumes
    last_run_id: str = ""
    backfill_reply: str = ""  # the history RPC's reply key, until the first turn took it
    backfill_requested_ms: int | None = None
    # the thread's own settings (/config, -model, -repo); empty: the channel's or deployment's
    cfg_sandbox: str = ""
    cfg_network: str = ""  # "1" | "0"
    cfg_approval: str = ""
    cfg_model: str = ""
    pick_model: str = ""
    pick_repo: str = ""

    def to_hash(self) -> dict[str, str]:
        stored = super().to_hash()
        # counters and the epoch exist from the start (HINCRBY targets, the admin page's columns)
        for name in ("epoch", "input_tokens", "output_tokens", "total_tokens"):
            stored[name] = str(getattr(self, name))
        return stored


@dataclass(frozen=True)
class RunRecord(HashRecord):
    """`run:<id>`: one turn, from the orchestrator's RunRequest to its end. Besides these fields
    the hash keeps one field per open approval (`approval:<request id>`) and per steer in flight
    (`steer:<event id>`), written and removed by the orchestrator alone."""

    session_key: str = ""
    status: str = ""  # queued | running | completed | failed | interrupted (the runner's view)
    created_at_ms: int | None = None
    platform: str = ""
    conversation_id: str = ""
    root_message_id: str = ""
    requester: str = ""
    requester_name: str = ""
    message_id: str = ""
    epoch: int = 0
    model: str = ""
    auth_profile: str = ""
    inputs: str = ""  # the messages it was built from (the Retry button), JSON
    view: str = ""  # the live view's ProgressView, JSON
    last_seq: int = -1
    runner_id: str = ""  # the runner that claimed it (run_fence.CLAIM_RUN), with these two
    runner_boot: str = ""
    started_at_ms: int | None = None
    finished_at_ms: int | None = None  # the runner's terminal event went out
    turn_id: str = ""
    thread_id: str = ""
    cancel_requested: bool = False
    usage: str = ""  # TokenUsage JSON
    answers_posted: int = 0
    orchestrator_outcome: str = ""  # the orchestrator finished it (libs/run_fence.ENDED_FIELD)
    ended_at_ms: int | None = None
    error: str = ""
    fenced: str = ""  # why the orchestrator gave up on it: unclaimed | gone (run_fence)
    retried_by: str = ""  # who clicked the Retry button of its lost-turn notice (the first click)
    # per-item fields as read: `approval:<request id>` (+ `:summary`), `steer:<event id>`
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        stored = super().to_hash()
        stored["last_seq"] = str(self.last_seq)  # -1: no event handled yet
        return stored

    @property
    def exists(self) -> bool:
        """A run record the orchestrator wrote (not an expired or foreign key)."""
        return bool(self.platform and self.session_key)

    @property
    def ended(self) -> bool:
        """The orchestrator finished it (the runner's own `status` may say so earlier)."""
        return bool(self.orchestrator_outcome)

    @property
    def coords(self) -> Coordinates:
        return Coordinates(
            platform=self.platform,  # type: ignore[arg-type]
            conversation_id=self.conversation_id,
            root_message_id=self.root_message_id,
        )

    def approval(self, request_id: str) -> str:
        """pending | accept | decline | … ("" when the run never asked)."""
        return self.extra.get(f"{APPROVAL_PREFIX}{request_id}", "")

    def approval_summary(self, request_id: str) -> str:
        return self.extra.get(f"{APPROVAL_PREFIX}{request_id}:summary", "")


APPROVAL_PREFIX = "approval:"


def approval_fields(request_id: str, state: str, summary: str | None = None) -> dict[str, str]:
    """The run hash's fields of one approval request (RunRecord.approval reads them)."""
    fields_ = {f"{APPROVAL_PREFIX}{request_id}": state}
    if summary is not None:
        fields_[f"{APPROVAL_PREFIX}{request_id}:summary"] = summary[:300]
    return fields_

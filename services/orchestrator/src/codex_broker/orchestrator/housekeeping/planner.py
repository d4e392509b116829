"""The disk-cleanup decision, with no I/O: given free space and candidates, what goes, in which order.

Old log files go first (cheap to lose), then the directories of sessions inactive for long
enough, least recently active first, until the target free space is reached. A session is kept
while something protects it — an active turn, pending inbound work, a running job — but only for
the protection time: a turn stuck for days must not pin a workspace forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

CandidateKind = Literal["log", "session"]

PROTECTION_ACTIVE_RUN = "active_run"
PROTECTION_PENDING_INBOUND = "pending_inbound"
PROTECTION_RUNNING_JOB = "running_job"


@dataclass(frozen=True)
class Protection:
    reason: str  # one of PROTECTION_*
    since_ms: int  # when the protecting work started (or last showed life)
    detail: str = ""  # run id, job id, queue length: for the log line only


@dataclass(frozen=True)
class Candidate:
    kind: CandidateKind
    paths: tuple[Path, ...]
    size_bytes: int
    last_activity_ms: int
    session_key: str | None = None  # None for logs and for session dirs no session owns
    protections: tuple[Protection, ...] = ()

    @property
    def path(self) -> Path:
        return self.paths[0]


@dataclass(frozen=True)
class Policy:
    min_free_bytes: int
    target_free_bytes: int
    old_log_ms: int
    inactive_session_ms: int
    protection_ms: int


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    delete: bool
    reason: str


@dataclass(frozen=True)
class Plan:
    free_bytes: int
    target_free_bytes: int
    needed: bool
    deletions: tuple[Decision, ...] = ()
    kept: tuple[Decision, ...] = ()  # protected sessions: logged so an operator sees why
    eligible_bytes: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def planned_bytes(self) -> int:
        return sum(d.candidate.size_bytes for d in self.deletions)

    @property
    def expected_free_bytes(self) -> int:
        return self.free_bytes + self.planned_bytes

    @property
    def reaches_target(self) -> bool:
        return self.expected_free_bytes >= self.target_free_bytes


def _hours(ms: int) -> str:
    return f"{ms / 3_600_000:.1f}h"


def live_protections(candidate: Candidate, policy: Policy, now_ms: int) -> list[Protection]:
    """Protections still in force: younger than the protection time."""
    return [p for p in candidate.protections if now_ms - p.since_ms < policy.protection_ms]


def log_decision(candidate: Candidate, policy: Policy, now_ms: int) -> Decision | None:
    """A deletion for a log file older than DISK_CLEANUP_OLD_LOG_MS, else None (not a candidate)."""
    age = now_ms - candidate.last_activity_ms
    if age < policy.old_log_ms:
        return None
    return Decision(candidate, True, f"log file last written {_hours(age)} ago")


def session_decision(candidate: Candidate, policy: Policy, now_ms: int) -> Decision | None:
    """Deletion, protected-keep, or None when the session is simply too recent to consider."""
    age = now_ms - candidate.last_activity_ms
    if age < policy.inactive_session_ms:
        return None
    live = live_protections(candidate, policy, now_ms)
    if live:
        reasons = ", ".join(f"{p.reason} for {_hours(now_ms - p.since_ms)}" for p in live)
        return Decision(candidate, False, f"protected ({reasons}); inactive {_hours(age)}")
    owner = "session" if candidate.session_key else "orphan session directory"
    reason = f"{owner} inactive {_hours(age)}"
    if candidate.protections:
        lapsed = ", ".join(sorted({p.reason for p in candidate.protections}))
        reason += f"; protection lapsed after {_hours(policy.protection_ms)} ({lapsed})"
    return Decision(candidate, True, reason)


def plan_cleanup(free_bytes: int, candidates: Sequence[Candidate], policy: Policy, now_ms: int) -> Plan:
    """The ordered deletions that bring free space up to the target (or as close as allowed)."""
    if free_bytes >= policy.min_free_bytes:
        return Plan(free_bytes, policy.target_free_bytes, needed=False)
    logs = [d for c in candidates if c.kind == "log" if (d := log_decision(c, policy, now_ms))]
    sessions = [d for c in candidates if c.kind == "session" if (d := session_decision(c, policy, now_ms))]
    logs.sort(key=lambda d: (d.candidate.last_activity_ms, str(d.candidate.path)))
    sessions.sort(key=lambda d: (d.candidate.last_activity_ms, str(d.candidate.path)))
    eligible = [d for d in logs + sessions if d.delete]
    kept = tuple(d for d in sessions if not d.delete)

    deletions: list[Decision] = []
    expected = free_bytes
    for decision in eligible:
        if expected >= policy.target_free_bytes:
            break
        deletions.append(decision)
        expected += decision.candidate.size_bytes
    notes: tuple[str, ...] = ()
    if expected < policy.target_free_bytes:
        notes = (f"target unreachable: {policy.target_free_bytes - expected} bytes short",)
    return Plan(
        free_bytes,
        policy.target_free_bytes,
        needed=True,
        deletions=tuple(deletions),
        kept=kept,
        eligible_bytes=sum(d.candidate.size_bytes for d in eligible),
        notes=notes,
    )


def with_protections(
    candidate: Candidate, protections: Sequence[Protection], last_activity_ms: int
) -> Candidate:
    """A re-read of a session candidate (the executor re-checks right before deleting)."""
    return replace(candidate, protections=tuple(protections), last_activity_ms=last_activity_ms)

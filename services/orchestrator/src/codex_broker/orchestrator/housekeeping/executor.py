"""Carries out a cleanup plan: logs every decision; deletes only outside dry-run, only inside
DATA_ROOT's logs/, sessions/ and jobs/, and re-checks a session right before removing it."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codex_broker.libs.paths import is_within
from codex_broker.orchestrator.housekeeping.planner import Candidate, Decision, Plan

log = logging.getLogger(__name__)

DELETABLE_AREAS = ("logs", "sessions", "jobs")

ItemStatus = Literal["would_delete", "deleted", "skipped", "failed", "kept"]
# Returns a fresh decision for a session candidate (None: no longer a candidate at all).
Recheck = Callable[[Candidate], Awaitable[Decision | None]]


@dataclass(frozen=True)
class ItemOutcome:
    decision: Decision
    status: ItemStatus
    note: str = ""

    def to_event(self, data_root: Path) -> dict[str, Any]:
        c = self.decision.candidate
        return {
            "kind": c.kind,
            "paths": [_relative(p, data_root) for p in c.paths],
            "size_bytes": c.size_bytes,
            "session_key": c.session_key,
            "reason": self.decision.reason,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Outcome:
    dry_run: bool
    items: list[ItemOutcome] = field(default_factory=list)

    @property
    def deleted_bytes(self) -> int:
        return sum(i.decision.candidate.size_bytes for i in self.items if i.status == "deleted")

    def count(self, status: ItemStatus) -> int:
        return sum(1 for i in self.items if i.status == status)


def _relative(path: Path, data_root: Path) -> str:
    try:
        return str(path.relative_to(data_root))
    except ValueError:
        return str(path)


def deletable(path: Path, data_root: Path) -> bool:
    """Only strictly inside DATA_ROOT/{logs,sessions,jobs}, and never through a symlink."""
    if path.is_symlink():
        return False
    for area in DELETABLE_AREAS:
        root = Path(data_root) / area
        if is_within(path, root) and path.resolve() != root.resolve():
            return True
    return False


def remove_path(path: Path) -> None:
    """Delete a file or a whole tree (symlinks inside are removed, never followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _log_decision(decision: Decision, status: ItemStatus, note: str = "") -> None:
    c = decision.candidate
    log.info(
        "disk cleanup %s: %s",
        status.replace("_", " "),
        c.path,
        extra={
            "cleanup_status": status,
            "cleanup_kind": c.kind,
            "cleanup_paths": [str(p) for p in c.paths],
            "size_bytes": c.size_bytes,
            "reason": decision.reason,
            "note": note,
            "session_key": c.session_key,
        },
    )


async def execute_plan(
    plan: Plan, *, dry_run: bool, data_root: Path, recheck: Recheck | None = None
) -> Outcome:
    outcome = Outcome(dry_run=dry_run)
    for kept in plan.kept:
        _log_decision(kept, "kept")
        outcome.items.append(ItemOutcome(kept, "kept"))
    for decision in plan.deletions:
        if dry_run:
            _log_decision(decision, "would_delete")
            outcome.items.append(ItemOutcome(decision, "would_delete"))
            continue
        outcome.items.append(await _delete(decision, data_root, recheck))
    return outcome


async def _delete(decision: Decision, data_root: Path, recheck: Recheck | None) -> ItemOutcome:
    candidate = decision.candidate
    if candidate.kind == "session" and recheck is not None:
        fresh = await recheck(candidate)
        if fresh is None or not fresh.delete:
            note = fresh.reason if fresh else "active again since the plan was made"
            _log_decision(decision, "skipped", note)
            return ItemOutcome(decision, "skipped", note)
    unsafe = [p for p in candidate.paths if not deletable(p, data_root)]
    if unsafe:
        note = f"refused: outside the deletable areas of DATA_ROOT: {unsafe[0]}"
        log.warning("disk cleanup %s", note)
        return ItemOutcome(decision, "failed", note)
    try:
        for path in candidate.paths:
            await asyncio.to_thread(remove_path, path)
    except OSError as exc:
        note = f"{type(exc).__name__}: {exc}"
        _log_decision(decision, "failed", note)
        return ItemOutcome(decision, "failed", note)
    _log_decision(decision, "deleted")
    return ItemOutcome(decision, "deleted")

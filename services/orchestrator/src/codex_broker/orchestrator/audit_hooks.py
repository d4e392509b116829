"""What the orchestrator puts on the audit trail, each record in the round trip of its effect.

A turn's record joins the RunRequest's pipeline and a run event's record the pipeline that
records its `last_seq`, so an input handled twice (a redelivery) is skipped before it writes a
second record. Text is never recorded: who, where, which run, and for a command its command line
and exit code only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codex_broker.libs import audit
from codex_broker.libs.contracts import Actor, InboundEvent, RunEvent, RunRequest
from codex_broker.libs.records import RunRecord

if TYPE_CHECKING:  # core calls in here for a turn's record
    from codex_broker.orchestrator.core import Core

CODEX_ACTOR = "codex"


def _person(actor: Actor) -> dict[str, str]:
    return {"actor": actor.id, "actor_name": actor.display_name or actor.id}


def turn(core: Core, pipe: Any, request: RunRequest, events: list[InboundEvent]) -> None:
    """A turn started: who asked (the first person among its messages), in which thread."""
    people = [e for e in events if e.kind != "job_callback"]
    first = people[0] if people else events[-1]
    record = audit.make(
        "turn",
        platform=request.coords.platform,
        session_key=request.session_key,
        run_id=request.run_id,
        action="job_callback" if not people else "message",
        summary=f"{len(events)} message(s)",
        details={
            "thread_id": request.thread_id or "",
            "model": request.model or "",
            "workspace": request.workspace,
        },
        **_person(first.actor),
    )
    core.audit.add(pipe, record)


def steer(core: Core, pipe: Any, event: InboundEvent, run_id: str) -> None:
    record = audit.make(
        "steer", platform=event.platform, session_key=event.session_key, run_id=run_id, **_person(event.actor)
    )
    core.audit.add(pipe, record)


def run_event(core: Core, pipe: Any, run: RunRecord, event: RunEvent) -> None:
    """Commands Codex ran and approvals it asked for, from the runner's translated events."""
    common = {"platform": run.platform, "session_key": run.session_key, "run_id": event.run_id}
    item = event.item
    if event.kind == "item_completed" and item is not None and item.kind == "command":
        record = audit.make(
            "command",
            CODEX_ACTOR,
            summary=item.command or item.summary,
            exit_code=item.exit_code,
            action=item.status,
            details={"requester": run.requester},
            **common,
        )
        core.audit.add(pipe, record)
    elif event.kind == "approval_requested" and event.approval is not None:
        approval = event.approval
        record = audit.make(
            "approval_requested",
            run.requester,
            actor_name=run.requester_name,
            action=approval.kind,
            summary=approval.command or approval.summary,
            details={"request_id": approval.request_id},
            **common,
        )
        core.audit.add(pipe, record)
    elif event.kind == "approval_resolved" and event.decision is not None:
        decision = event.decision
        if run.approval(decision.request_id) != "pending":
            return  # a person decided: that click is on the trail already
        record = audit.make(
            "approval_decided",
            decision.decided_by or "codex-runner",
            action=decision.decision,
            summary="no decision in time" if not decision.decided_by else "",
            details={"request_id": decision.request_id},
            **common,
        )
        core.audit.add(pipe, record)


def approval_click(
    core: Core, pipe: Any, event: InboundEvent, run_id: str, request_id: str, decision: str
) -> None:
    record = audit.make(
        "approval_decided",
        platform=event.platform,
        session_key=event.session_key,
        run_id=run_id,
        action=decision,
        details={"request_id": request_id},
        **_person(event.actor),
    )
    core.audit.add(pipe, record)

"""Which stream family may carry which InboundEvent (pure).

The platform inbound streams are written by the ingresses (and by the orchestrator itself), the
job-callback streams by the http-api and the rq worker (and by the orchestrator's workspace
wakes). Redis ACLs grant streams by key, not by entry kind, so each kind is taken only from its
own family: a process that may write one family cannot pass for the other. An event on the wrong
family is refused — dead-lettered with the reason, never handled.

One exception, for one release (docs/architecture.md "Contracts across releases"): the previous
release put job callbacks on the inbound streams, and its http-api and worker replicas still do
while a rollout runs (and its orchestrators put workspace wakes there). Such an entry is still
handled when its actor is its own job (`job:<job id>`, as the http-api writes it) or it is a
wake (actor `workspace`, job id `delegation:...`), and Redis added it before the moment the first
orchestrator reading the job-callback streams took a shard (`Keys.job_callback_streams_since`)
plus ROLLOUT_WINDOW_MS. Every such one is counted (`cb_orchestrator_legacy_job_callbacks_total`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codex_broker.libs.contracts import InboundEvent
from codex_broker.orchestrator.workspace_rules import WAKE_ACTOR, WAKE_JOB_PREFIX

Family = Literal["inbound", "job_callbacks"]

# how long previous-release http-api and worker replicas may run beside this release's
# orchestrators (a rollout; old runners drain for up to 15 min)
ROLLOUT_WINDOW_MS = 60 * 60 * 1000


@dataclass(frozen=True)
class Admission:
    accepted: bool
    legacy: bool = False  # a job callback of the previous release, left on an inbound stream
    reason: str = ""  # why it was refused


def entry_ms(entry_id: str) -> int:
    """The time Redis gave the entry (the first part of its id, ms on Redis's clock)."""
    return int(entry_id.split("-", 1)[0])


def admit(family: Family, event: InboundEvent, entry_id: str, job_streams_since_ms: int) -> Admission:
    if family == "job_callbacks":
        if event.kind == "job_callback":
            return Admission(True)
        return Admission(False, reason=f"a {event.kind} event on a job-callback stream")
    if event.kind != "job_callback":
        return Admission(True)
    if _previous_release_callback(event, entry_id, job_streams_since_ms):
        return Admission(True, legacy=True)
    return Admission(False, reason="a job_callback event on a platform inbound stream")


def _previous_release_callback(event: InboundEvent, entry_id: str, since_ms: int) -> bool:
    if event.job is None:
        return False
    job_id = event.job.job_id
    own_job = event.actor.id == f"job:{job_id}"
    wake = event.actor.id == WAKE_ACTOR and job_id.startswith(WAKE_JOB_PREFIX)
    return (own_job or wake) and entry_ms(entry_id) < since_ms + ROLLOUT_WINDOW_MS

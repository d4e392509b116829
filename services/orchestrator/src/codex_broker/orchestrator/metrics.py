"""Orchestrator metrics (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ITEMS = Counter("cb_orchestrator_items_total", "Work items handled", ["kind", "result"])
RECLAIMED = Counter("cb_orchestrator_reclaimed_total", "Pending entries taken over from another consumer")
WRONG_STREAM = Counter(
    "cb_orchestrator_wrong_stream_total",
    "Inbound events refused (dead-lettered) because their kind does not belong on the stream "
    "they came on: a job callback on a platform inbound stream, a platform event on a "
    "job-callback stream (stream_admission.py); any increase is an alert",
    ["kind"],
)
LEGACY_JOB_CALLBACKS = Counter(
    "cb_orchestrator_legacy_job_callbacks_total",
    "Job callbacks of the previous release still handled from a platform inbound stream during "
    "the rollout window (stream_admission.py)",
)
SHARDS_HELD = Gauge("cb_orchestrator_shards_held", "Shard leases held by this replica")
SESSIONS_BUSY = Gauge("cb_orchestrator_sessions_busy", "Sessions with work in memory on this replica")
INBOUND = Counter(
    "cb_orchestrator_inbound_total",
    "Inbound events by what was done with them",
    ["outcome"],  # ignored, refused, command, queued, debounced, started, steered, busy, duplicate, action
)
RUNS_STARTED = Counter("cb_orchestrator_runs_started_total", "RunRequests published", ["thread"])
RUNS_FINISHED = Counter("cb_orchestrator_runs_finished_total", "Runs ended", ["outcome"])
RUNS_LOST = Counter("cb_orchestrator_runs_lost_total", "Runs reported failed by reconciliation", ["reason"])
RUNS_WAITING = Counter("cb_orchestrator_runs_waiting_total", "Turns that waited for a MAX_ACTIVE_RUNS slot")
PROGRESS_SNAPSHOTS = Counter("cb_orchestrator_progress_snapshots_total", "Progress snapshots published")
ANSWERS_POSTED = Counter(
    "cb_orchestrator_answers_posted_total",
    "Earlier answers of a turn posted as messages of their own (a steer took over after them)",
)
STEERS_REJECTED = Counter(
    "cb_orchestrator_steers_rejected_total",
    "Steers a runner could not apply, by what became of the message",
    ["result"],  # requeued, dropped_stopped
)
COMMANDS = Counter("cb_orchestrator_commands_total", "Chat commands handled", ["command"])
RPC_TIMEOUTS = Counter(
    "cb_orchestrator_rpc_timeouts_total", "History/download RPCs without a reply", ["kind"]
)
INBOUND_TO_RUN_SECONDS = Histogram(
    "cb_orchestrator_inbound_to_run_seconds",
    "From an inbound event being read to its RunRequest being published (debounce included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

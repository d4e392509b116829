"""codex-runner metrics. Labels are bounded: an outcome, a direction, never a run or session id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TURNS_STARTED = Counter("cb_runner_turns_started_total", "Runs claimed and started by this runner")
TURNS_FINISHED = Counter(
    "cb_runner_turns_finished_total", "Runs that reached a terminal event", ["outcome"]
)  # outcome: completed | failed | interrupted
TURN_SECONDS = Histogram(
    "cb_runner_turn_seconds",
    "Wall time from claim to terminal event",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RUNS_HANDED_OVER = Counter(
    "cb_runner_runs_handed_over_total", "Runs passed to the runner whose app-server holds their Codex thread"
)
RUNS_FENCED = Counter(
    "cb_runner_runs_fenced_total", "Runs refused at claim: the orchestrator had reported them lost"
)
ACTIVE_TURNS = Gauge("cb_runner_active_turns", "Runs in progress on this runner")
CAPACITY = Gauge("cb_runner_capacity", "MAX_CONCURRENT_TURNS of this runner")
APP_SERVER_RESTARTS = Counter("cb_runner_app_server_restarts_total", "Codex app-server processes restarted")
APP_SERVER_UP = Gauge("cb_runner_app_servers_up", "Codex app-server processes running and initialized")
TOKENS = Counter("cb_runner_tokens_total", "Model tokens used by finished turns", ["direction"])  # in | out
APPROVALS = Counter("cb_runner_approvals_total", "Approval requests by decision", ["decision"])
WATCHDOG_INTERRUPTS = Counter("cb_runner_watchdog_interrupts_total", "Turns interrupted for inactivity")
RUNS_HANDED_OVER_ON_DRAIN = Counter(
    "cb_runner_drain_handovers_total",
    "Turns still running when the drain grace ran out: interrupted with the restart notice",
)

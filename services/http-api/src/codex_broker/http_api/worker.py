"""The rq worker of background jobs: `python -m codex_broker.http_api.worker`.

A pool of rq workers (JOB_WORKERS) runs `run_job` attempts. The pool's main process also
writes the worker heartbeat and, every JOB_RECOVER_INTERVAL_S and at boot, looks for orphaned
jobs: a running job its worker stopped touching (the worker died) or a queued one rq lost.
Those are re-enqueued when `restart_on_boot` is set and the 5 h limit is not reached, else
reported as failed or timed out.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from redis import Redis as SyncRedis
from rq import Worker
from rq.worker_pool import WorkerPool

from codex_broker.http_api import job_exec, job_sandbox, jobs_queue, worker_health
from codex_broker.http_api.auth import token_sha256
from codex_broker.http_api.config import Settings
from codex_broker.http_api.jobs import JobRecord, bounded_details, encoded_callback, orphan_action
from codex_broker.http_api.jobs_store import SyncJobStore, now_ms
from codex_broker.libs import sealing
from codex_broker.libs.codex_bin import find_codex_bin, native_codex_bin
from codex_broker.libs.heartbeat import broker_version
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.metrics import SERVICE_INFO
from codex_broker.libs.paths import job_dir, repos_root
from codex_broker.libs.runtime import private_data_root
from codex_broker.libs.settings import load_settings

SERVICE = "http-api-worker"
log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    settings: Settings
    name: str
    host: str
    redis: SyncRedis
    store: SyncJobStore
    pid: int
    sandbox: job_sandbox.SandboxState
    codex_bin: str | None

    @classmethod
    def create(
        cls, settings: Settings, sandbox: job_sandbox.SandboxState, codex_bin: str | None
    ) -> WorkerRuntime:
        redis = SyncRedis.from_url(settings.redis_url, socket_connect_timeout=5)
        store = SyncJobStore(redis, settings.keys, settings.job_retention_s, settings.stream_maxlen)
        name = settings.worker_name or settings.instance_id
        return cls(settings, name, socket.gethostname(), redis, store, os.getpid(), sandbox, codex_bin)


def codex_for_jobs(settings: Settings) -> str | None:
    found = find_codex_bin(settings.codex_bin)
    return native_codex_bin(found) if found else None


def check_sandbox(settings: Settings, codex_bin: str | None) -> job_sandbox.SandboxState:
    problem = job_sandbox.probe(codex_bin, settings.data_root)
    return job_sandbox.decide(problem, allow_unsandboxed=settings.jobs_unsandboxed)


_runtime: WorkerRuntime | None = None


def runtime() -> WorkerRuntime:
    """One runtime per process: rq forks, and a forked child gets fresh connections."""
    global _runtime
    if _runtime is not None and _runtime.pid != os.getpid():
        _runtime = WorkerRuntime.create(_runtime.settings, _runtime.sandbox, _runtime.codex_bin)
    elif _runtime is None:
        settings = load_settings(Settings)
        codex_bin = codex_for_jobs(settings)
        _runtime = WorkerRuntime.create(settings, check_sandbox(settings, codex_bin), codex_bin)
    return _runtime


# ---- one attempt ------------------------------------------------------------------------------


def run_job(job_id: str, attempt: int) -> str:
    """rq entry point for one attempt of a job; returns its outcome for rq's records."""
    job_exec.die_with_parent()
    rt = runtime()
    record = rt.store.get(job_id)
    if record is None or record.finished or record.attempts != attempt:
        return "skipped"
    if record.cancel_requested:
        rt.store.transition(job_id, "cancelled", "cancelled before start")
        return "cancelled"
    started = now_ms()
    first_started = record.first_started_at_ms or started
    deadline_ms = first_started + record.timeout_s * 1000
    if started >= deadline_ms:
        report(rt, record, "timeout", f"over its {record.timeout_s}s limit before it could run", None)
        return "timeout"
    if rt.sandbox.mode == "refused":
        report(rt, record, "failed", rt.sandbox.refusal, None)
        return "failed"
    cwd = _checked_cwd(record)
    if cwd is None:
        report(rt, record, "failed", "cwd is not inside the session workspace", None)
        return "failed"
    try:
        sealing.check_workspace(rt.settings.data_root, record.session_key, record.workspace)
    except sealing.WorkspaceRefused as exc:
        report(rt, record, "failed", f"workspace_refused: {exc}", None)
        return "failed"
    return _execute(rt, record, cwd, first_started, deadline_ms / 1000)


def _checked_cwd(record: JobRecord) -> Path | None:
    workspace = os.path.realpath(record.workspace)
    cwd = os.path.realpath(record.cwd or record.workspace)
    if os.path.commonpath([cwd, workspace]) != workspace or not os.path.isdir(cwd):
        return None
    return Path(cwd)


def _execute(rt: WorkerRuntime, record: JobRecord, cwd: Path, first_started: int, deadline: float) -> str:
    directory = job_dir(rt.settings.data_root, record.id)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "script.sh"
    script.write_text(record.script)
    output = directory / "output.log"
    token = secrets.token_urlsafe(32)
    now = now_ms()
    rt.store.update(
        record.id,
        status="running",
        started_at_ms=now,
        first_started_at_ms=first_started,
        worker=rt.name,
        host=rt.host,
        worker_seen_at_ms=now,
        token_sha256=token_sha256(token),
    )
    env = job_exec.job_env(
        record,
        token=token,
        api_base=rt.settings.api_base,
        repos_root=repos_root(rt.settings.data_root).resolve(),
        inherited=dict(os.environ),
    )
    argv = job_exec.script_command(script)
    if rt.sandbox.mode == "sandboxed" and rt.codex_bin:
        argv, env = _sandboxed(rt, rt.codex_bin, record, directory, argv, env)
    proc = job_exec.spawn(argv, cwd, env, output)
    rt.store.update(record.id, pgid=proc.pid)
    log.info(
        "job started",
        extra={
            "job_id": record.id,
            "attempt": record.attempts,
            "kind": record.kind,
            "sandbox": rt.sandbox.mode,
        },
    )

    def poll() -> bool:
        rt.store.update(record.id, worker_seen_at_ms=now_ms())
        current = rt.store.get(record.id)
        return current is None or current.cancel_requested or current.status == "cancelled"

    outcome = job_exec.supervise(proc, deadline=deadline, poll=poll, grace_s=rt.settings.job_kill_grace_s)
    output_tail = job_exec.tail(output)
    if outcome.kind == "timeout":
        report(rt, record, "timeout", f"killed after its {record.timeout_s}s limit", output_tail)
    elif outcome.kind == "cancelled":
        rt.store.transition(record.id, "cancelled", "cancelled")
    elif outcome.exit_code == 0:
        report(rt, record, "completed", "script exited 0", output_tail, exit_code=0)
    else:
        report(
            rt,
            record,
            "failed",
            f"script exited {outcome.exit_code}",
            output_tail,
            exit_code=outcome.exit_code,
        )
    log.info(
        "job ended", extra={"job_id": record.id, "outcome": outcome.kind, "exit_code": outcome.exit_code}
    )
    return outcome.kind


def _sandboxed(
    rt: WorkerRuntime,
    codex_bin: str,
    record: JobRecord,
    directory: Path,
    argv: list[str],
    env: dict[str, str],
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `argv` in the session's sandbox."""
    raw = rt.redis.hget(rt.settings.keys.session(record.session_key), "cfg_network")
    text = raw.decode() if isinstance(raw, bytes) else raw
    network = job_sandbox.session_network(text, rt.settings.network_access)
    config = sealing.job_config(
        rt.settings.data_root,
        record.session_key,
        Path(record.workspace),
        directory,
        network_access=network,
        allowed_hosts=sealing.allowed_hosts(rt.settings.api_base, rt.settings.network_allowed_domains),
    )
    home = job_sandbox.sandbox_home(rt.settings.data_root)
    return job_sandbox.sandbox_argv(codex_bin, config, argv), {**env, "CODEX_HOME": str(home)}


CALLBACK_STATUS = {"completed": "complete", "failed": "fail", "timeout": "timeout"}


def report(
    rt: WorkerRuntime,
    record: JobRecord,
    status: str,
    summary: str,
    output_tail: str | None,
    *,
    exit_code: int | None = None,
) -> None:
    """Finish the job (unless a callback already did) and tell its session."""
    seq = rt.store.transition(record.id, status, summary, exit_code)
    if seq <= 0:
        return
    details = bounded_details({"exitCode": exit_code, "outputTail": output_tail, "by": "worker"})
    rt.store.publish(
        record.session_key, encoded_callback(record, CALLBACK_STATUS[status], seq, summary, details)
    )


# ---- recovery ---------------------------------------------------------------------------------


def recover(rt: WorkerRuntime) -> dict[str, int]:
    """Re-enqueue or report orphaned jobs; one worker at a time (a short lease)."""
    keys = rt.settings.keys
    if not rt.redis.set(keys.lease("jobs-recovery"), rt.name, nx=True, ex=60):
        return {}
    counts: dict[str, int] = {}
    try:
        stale_ms = int(rt.settings.job_stale_after_s * 1000)
        for record in rt.store.live_jobs():
            state = jobs_queue.rq_state(rt.redis, record.rq_job_id()) if record.status == "queued" else None
            action = orphan_action(record, now_ms(), stale_ms, state)
            if action == "none":
                continue
            counts[action] = counts.get(action, 0) + 1
            _recover_one(rt, record, action)
    finally:
        rt.redis.delete(keys.lease("jobs-recovery"))
    return counts


def _recover_one(rt: WorkerRuntime, record: JobRecord, action: str) -> None:
    if record.pgid and record.host == rt.host:
        job_exec.kill_leftovers(record.pgid, record.id)
    log.warning("orphaned job", extra={"job_id": record.id, "action": action, "status": record.status})
    if action == "cancel":
        rt.store.transition(record.id, "cancelled", "cancelled")
    elif action == "timeout":
        report(rt, record, "timeout", f"over its {record.timeout_s}s limit after a worker restart", None)
    elif action == "fail":
        report(rt, record, "failed", "the worker running it stopped (restart_on_boot is off)", None)
    else:
        record.attempts += 1
        rt.store.update(record.id, status="queued", attempts=record.attempts, enqueued_at_ms=now_ms(), pgid=0)
        jobs_queue.enqueue(rt.redis, rt.settings.keys.rq_queue_name, record)


# ---- the pool ---------------------------------------------------------------------------------


class JobsWorker(Worker):
    """An rq worker that does not outlive the pool process that started it."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        job_exec.die_with_parent()
        return super().work(*args, **kwargs)


class JobsWorkerPool(WorkerPool):
    """rq's pool, plus heartbeat and orphan recovery from its (single-threaded) main loop."""

    rt: WorkerRuntime
    _last_recover = 0.0
    _last_beat = 0.0

    def check_workers(self, respawn: bool = True) -> None:
        super().check_workers(respawn=respawn)
        now = time.monotonic()
        try:
            if now - self._last_beat >= self.rt.settings.heartbeat_interval_s:
                self._last_beat = now
                beat(self.rt, active=len(self.worker_dict))
            if now - self._last_recover >= self.rt.settings.job_recover_interval_s:
                self._last_recover = now
                recover(self.rt)
        except Exception as exc:  # Redis blips must not stop the pool; the next round retries
            log.warning("worker housekeeping failed", extra={"error": str(exc)[:300]})


def beat(rt: WorkerRuntime, *, active: int) -> None:
    body: dict[str, Any] = {
        "service": SERVICE,
        "instance": rt.name,
        "pid": os.getpid(),
        "host": rt.host,
        "at": time.time(),
        "capacity": rt.settings.job_workers,
        "workers": active,
        # a worker that refuses jobs (no sandbox) says so where probes and the admin page look
        "ready": rt.sandbox.mode != "refused",
        "sandbox": rt.sandbox.mode,
        "version": broker_version(),
    }
    if rt.sandbox.reason:
        body["sandbox_reason"] = rt.sandbox.reason
    rt.redis.set(
        rt.settings.keys.heartbeat(SERVICE, rt.name), json.dumps(body), ex=rt.settings.heartbeat_ttl_s
    )


def _log_sandbox(state: job_sandbox.SandboxState) -> None:
    if state.mode == "refused":
        log.error("jobs refused: Codex's sandbox cannot start here", extra={"reason": state.reason})
    elif state.mode == "unsandboxed":
        log.warning(
            "jobs run UNSANDBOXED (JOBS_UNSANDBOXED=true): Codex's sandbox cannot start here",
            extra={"reason": state.reason},
        )


def main() -> int:
    global _runtime
    settings = load_settings(Settings)
    private_data_root(settings.data_root)
    setup_logging(
        SERVICE, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    codex_bin = codex_for_jobs(settings)
    rt = WorkerRuntime.create(settings, check_sandbox(settings, codex_bin), codex_bin)
    _runtime = rt
    _log_sandbox(rt.sandbox)
    health = start_health(rt)
    beat(rt, active=0)
    counts = recover(rt)
    log.info(
        "worker starting",
        extra={
            "worker": rt.name,
            "recovered": counts,
            "workers": settings.job_workers,
            "sandbox": rt.sandbox.mode,
        },
    )
    pool = JobsWorkerPool(
        [settings.keys.rq_queue_name],
        connection=rt.redis,
        num_workers=settings.job_workers,
        worker_class=JobsWorker,
    )
    pool.rt = rt
    pool._last_recover = time.monotonic()
    pool.start(logging_level=settings.log_level)
    rt.redis.delete(settings.keys.heartbeat(SERVICE, rt.name))
    if health is not None:
        health.shutdown()
    return 0


def start_health(rt: WorkerRuntime) -> ThreadingHTTPServer | None:
    """/healthz, /readyz and /metrics on METRICS_PORT (0: none), as every process serves them."""
    settings = rt.settings
    if not settings.metrics_port:
        return None
    REGISTRY.register(
        worker_health.QueueCollector(rt.redis, settings.keys.rq_queue_name, settings.job_workers)
    )
    SERVICE_INFO.labels(service=SERVICE).set(1)
    return worker_health.serve(
        settings.metrics_host,
        settings.metrics_port,
        service=SERVICE,
        instance=rt.name,
        redis=rt.redis,
        registry=REGISTRY,
        state=lambda: (rt.sandbox.mode, rt.sandbox.reason),
    )


if __name__ == "__main__":
    # run the imported module's main, so that rq (which imports `run_job` by name) and this
    # process share one module and one runtime
    from codex_broker.http_api.worker import main as _main

    sys.exit(_main())

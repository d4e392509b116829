"""Putting a job attempt on the rq queue (sync: call it from a thread in async code)."""

from __future__ import annotations

from redis import Redis as SyncRedis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from codex_broker.http_api.jobs import JobRecord

RUN_JOB = "codex_broker.http_api.worker.run_job"
# rq's own limit only backs up ours: the worker kills the script at the job's deadline first
RQ_TIMEOUT_MARGIN_S = 600


def enqueue(redis: SyncRedis, queue_name: str, record: JobRecord) -> str:
    queue = Queue(queue_name, connection=redis)
    job = queue.enqueue(
        RUN_JOB,
        record.id,
        record.attempts,
        job_id=record.rq_job_id(),
        job_timeout=record.timeout_s + RQ_TIMEOUT_MARGIN_S,
        result_ttl=3600,
        failure_ttl=86400,
        description=f"codex-broker job {record.kind}",
    )
    return str(job.id)


def rq_state(redis: SyncRedis, rq_job_id: str) -> str | None:
    try:
        status = Job.fetch(rq_job_id, connection=redis).get_status(refresh=True)
    except NoSuchJobError:
        return None
    return None if status is None else str(getattr(status, "value", status))


def cancel(redis: SyncRedis, rq_job_id: str) -> None:
    try:
        Job.fetch(rq_job_id, connection=redis).cancel()
    except NoSuchJobError:
        return

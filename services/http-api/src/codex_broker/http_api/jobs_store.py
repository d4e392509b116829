"""Job records in Redis, for the async http-api (`JobStore`) and the sync rq worker (`SyncJobStore`).

Status changes go through one Lua script so that a job's own `complete` callback and the
worker noticing the script exit cannot both report: the first transition out of a live status
wins and gets the next callback sequence number, the second sees a finished job.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from codex_broker.http_api.jobs import JobRecord, from_hash, to_hash
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.keys import Keys

# returns -1 unknown job, 0 already finished, else the callback seq to use
TRANSITION_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'completed' or status == 'failed' or status == 'timeout' or status == 'cancelled' then
  return 0
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at_ms', ARGV[2], 'summary', ARGV[3])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'exit_code', ARGV[4]) end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
end
return redis.call('HINCRBY', KEYS[1], 'seq', 1)
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def _transition_args(status: str | None, summary: str, exit_code: int | None, retention_s: int) -> list[Any]:
    return [status or "", now_ms(), summary, "" if exit_code is None else exit_code, retention_s]


class JobStore:
    def __init__(self, redis: Redis, keys: Keys, retention_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self._transition = redis.register_script(TRANSITION_LUA)

    async def create(self, record: JobRecord) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.job(record.id), mapping=to_hash(record))  # type: ignore[arg-type]
        pipe.zadd(self.keys.jobs_index, {record.id: record.created_at_ms})
        await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        return from_hash(await self.redis.hgetall(self.keys.job(job_id)))  # type: ignore[misc]

    async def transition(
        self, job_id: str, status: str | None, summary: str = "", exit_code: int | None = None
    ) -> int:
        """Move to a finished status (None: stay, just take a seq for an event); see TRANSITION_LUA."""
        args = _transition_args(status, summary, exit_code, self.retention_s)
        return int(await self._transition(keys=[self.keys.job(job_id)], args=args))

    async def update(self, job_id: str, **values: Any) -> None:
        await self.redis.hset(self.keys.job(job_id), mapping={k: str(v) for k, v in values.items()})  # type: ignore[misc]


class SyncJobStore:
    def __init__(self, redis: SyncRedis, keys: Keys, retention_s: int, stream_maxlen: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_s = retention_s
        self.stream_maxlen = stream_maxlen
        self._transition = redis.register_script(TRANSITION_LUA)

    def get(self, job_id: str) -> JobRecord | None:
        return from_hash(self.redis.hgetall(self.keys.job(job_id)))  # type: ignore[arg-type]

    def update(self, job_id: str, **values: Any) -> None:
        self.redis.hset(self.keys.job(job_id), mapping={k: str(v) for k, v in values.items()})  # type: ignore[arg-type]

    def transition(
        self, job_id: str, status: str | None, summary: str = "", exit_code: int | None = None
    ) -> int:
        args = _transition_args(status, summary, exit_code, self.retention_s)
        return int(self._transition(keys=[self.keys.job(job_id)], args=args))  # type: ignore[arg-type]

    def publish(self, session_key: str, data: str) -> None:
        self.redis.xadd(
            self.keys.job_callback_stream_for(session_key),
            {DATA_FIELD: data},
            maxlen=self.stream_maxlen,
            approximate=True,
        )

    def live_jobs(self, batch: int = 500) -> list[JobRecord]:
        """Queued or running jobs; index entries whose record expired are pruned on the way."""
        live: list[JobRecord] = []
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in self.redis.zrange(self.keys.jobs_index, 0, -1)
        ]  # type: ignore[union-attr]
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hgetall(self.keys.job(job_id))
            gone = []
            for job_id, raw in zip(chunk, pipe.execute(), strict=True):
                record = from_hash(raw) if raw else None
                if record is None:
                    gone.append(job_id)
                elif not record.finished:
                    live.append(record)
            if gone:
                self.redis.zrem(self.keys.jobs_index, *gone)
        return live

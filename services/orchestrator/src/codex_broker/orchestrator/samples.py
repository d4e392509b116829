"""The broker's own turn latency and run queue, sampled into Redis time slots for the admin
page's charts (no Prometheus needed): one script call as each run ends, off the run's path."""

from __future__ import annotations

import time

from codex_broker.libs.keys import Keys
from codex_broker.libs.records import RunRecord
from codex_broker.libs.usage_counters import SLOT_S, SLOT_TTL_S
from codex_broker.orchestrator.core import Core

# KEYS: active runs, runs waiting for a slot, the time slot's hash (one hash tag, see keys.py)
SAMPLE_LUA = """
local active = redis.call('ZCARD', KEYS[1])
local waiting = redis.call('ZCARD', KEYS[2])
local latency = tonumber(ARGV[1])
redis.call('HINCRBY', KEYS[3], 'samples', 1)
redis.call('HINCRBY', KEYS[3], 'active_sum', active)
redis.call('HINCRBY', KEYS[3], 'waiting_sum', waiting)
if waiting > tonumber(redis.call('HGET', KEYS[3], 'waiting_max') or '-1') then
  redis.call('HSET', KEYS[3], 'waiting_max', waiting)
end
if latency >= 0 then
  redis.call('HINCRBY', KEYS[3], 'turns', 1)
  redis.call('HINCRBY', KEYS[3], 'latency_ms_sum', latency)
  if latency > tonumber(redis.call('HGET', KEYS[3], 'latency_ms_max') or '-1') then
    redis.call('HSET', KEYS[3], 'latency_ms_max', latency)
  end
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
return waiting
"""


def sample_keys(keys: Keys, now_s: float) -> list[str]:
    return [keys.active_runs, keys.runs_waiting, keys.metrics_bucket(int(now_s) // SLOT_S)]


async def sample(core: Core, run: RunRecord) -> None:
    """A run ended: its latency (request to end) and how full the run slots are now."""
    now_s = time.time()
    created = int(run.created_at_ms or 0)
    latency = max(0, int(now_s * 1000) - created) if created else -1
    script = core.redis.register_script(SAMPLE_LUA)
    await script(keys=sample_keys(core.keys, now_s), args=[latency, SLOT_TTL_S])

"""The fence between "the orchestrator gave up on a run" and "a runner starts it".

A run the orchestrator reports lost or unclaimed must never start afterwards: its thread was told
the turn failed, and an answer arriving later would be discarded (or, worse, act on the
workspace after the user moved on). Both sides decide on the run's own hash (`keys.run`), each
in one script, so exactly one of them wins:

- the orchestrator fences an unclaimed run only while no runner has claimed it
  (`FENCE_RUN`, mode `unclaimed`); a run whose runner is gone is fenced unconditionally (mode
  `gone`), so a redelivered stream entry for it cannot start it a second time;
- a runner claims a run only while it is neither fenced nor ended (`CLAIM_RUN`); a refused run's
  stream entry is acked and nothing about it is published.

The run hash is the generation token: a new turn of the session is a new run id with its own
hash, so an old run's entry cannot pass for the current one. (The runner cannot read the
session's state hash — its Redis user reaches only runs, streams and its own keys — so the check
lives in the one record both sides own.) Each script touches one key: cluster-safe.
"""

from __future__ import annotations

from typing import Any, Literal

FENCED_FIELD = "fenced"  # why the orchestrator gave up on the run: unclaimed | gone
ENDED_FIELD = "orchestrator_outcome"  # the orchestrator's own "finished" mark (orchestrator.core)

FenceMode = Literal["unclaimed", "gone"]
ClaimResult = Literal["claimed", "cancelled", "fenced"]

# KEYS[1] run hash; ARGV[1] mode. Returns 1 when the run is fenced now (or already was), 0 when
# a runner claimed it first (mode `unclaimed` only: the run is alive, not lost).
FENCE_RUN = """
if redis.call('hget', KEYS[1], ARGV[2]) then return 1 end
if ARGV[1] == 'unclaimed' and redis.call('hget', KEYS[1], 'runner_id') then return 0 end
redis.call('hset', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# KEYS[1] run hash; ARGV runner id, boot id, started-at ms, fenced field, ended field.
# Returns {'fenced', why} or {'claimed', cancel_requested or ''}.
CLAIM_RUN = """
local why = redis.call('hget', KEYS[1], ARGV[4]) or redis.call('hget', KEYS[1], ARGV[5])
if why then return {'fenced', why} end
redis.call('hset', KEYS[1], 'runner_id', ARGV[1], 'runner_boot', ARGV[2], 'status', 'running',
  'started_at_ms', ARGV[3])
return {'claimed', redis.call('hget', KEYS[1], 'cancel_requested') or ''}
"""


def fence_args(mode: FenceMode) -> list[str]:
    return [mode, FENCED_FIELD]


def claim_args(runner_id: str, boot_id: str, started_at_ms: int) -> list[str]:
    return [runner_id, boot_id, str(started_at_ms), FENCED_FIELD, ENDED_FIELD]


def claim_result(reply: Any) -> ClaimResult:
    """The claim script's reply as one of three outcomes (pure)."""
    verdict, detail = (_text(part) for part in reply)
    if verdict == "fenced":
        return "fenced"
    return "cancelled" if detail == "1" else "claimed"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

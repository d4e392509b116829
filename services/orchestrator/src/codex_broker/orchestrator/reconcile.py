"""Reconciliation of runs marked active, and of the run-slot FIFO.

Runs whose runner is alive are left alone. A run no runner claimed within RUN_CLAIM_TIMEOUT_S,
or whose runner's heartbeat is gone, is reported failed in its thread (through the session's
worker, like any other event) and the session stays resumable with its Codex thread; reporting
fences the run first (libs/run_fence.py), so it can never start afterwards.

Liveness is judged on one clock, Redis's (TIME; heartbeats carry `redis_at`), never on the
hosts' own clocks. And only while Redis has been reachable for a whole window: after an outage
(a failed pass, or Redis found emptied — `keys.redis_epoch` gone) the runners get
RUNNER_DEAD_AFTER_S to beat again and RUN_CLAIM_TIMEOUT_S to claim, before any verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from codex_broker.libs.heartbeat import redis_seconds, seen_at
from codex_broker.libs.records import RunRecord
from codex_broker.libs.run_fence import FenceMode
from codex_broker.orchestrator.core import ENDED_FIELD, Core, now_ms, text

log = logging.getLogger(__name__)

ORPHAN_GRACE_MS = 60_000  # an active-runs member without a run record (crash between two writes)
RUNNER_SERVICE = "codex-runner"

RUN_FIELDS = ("session_key", "runner_id", "runner_boot", "created_at_ms", "status", ENDED_FIELD)

Verdict = Literal["keep", "unclaimed", "runner_gone", "drop"]

UNCLAIMED_REASON = "no Codex runner picked this turn up in time. Send your message again to retry."
RUNNER_GONE_REASON = (
    "the Codex runner working on this turn stopped. Your next message continues the same Codex session."
)


def judge(
    run: RunRecord,
    *,
    runner_seen_at: float | None,
    now_s: float,
    claim_timeout_s: float,
    dead_after_s: float,
    runner_boot: str | None = None,
    reachable_since_s: float = 0.0,
) -> Verdict:
    """Pure verdict on one active run. `runner_seen_at` is its runner's last heartbeat and
    `now_s` the time now, both on Redis's clock (epoch s); `runner_boot` the process id in that
    heartbeat: a runner restarted under the same instance id (a supervisor or a pod restart)
    heartbeats again, but the run died with the old process. `reachable_since_s`: since when
    Redis has been reachable and whole — silence before that is the outage's, not the runner's."""
    if run.ended:
        return "drop"
    runner_id = run.runner_id
    if not runner_id:
        created_s = int(run.created_at_ms or 0) / 1000
        waited_s = now_s - max(created_s, reachable_since_s)
        return "unclaimed" if waited_s > claim_timeout_s else "keep"
    claimed_by = run.runner_boot
    if claimed_by and runner_boot and claimed_by != runner_boot:
        return "runner_gone"  # proof, not silence: no window needed
    if now_s - reachable_since_s <= dead_after_s:
        return "keep"
    if runner_seen_at is None or now_s - runner_seen_at > dead_after_s:
        return "runner_gone"
    return "keep"


LostCallback = Callable[[str, str, str, FenceMode], None]  # session key, run id, reason, fence


@dataclass
class Reconciler:
    core: Core
    held: Callable[[], set[int]]
    report_lost: LostCallback
    reported: set[str] = field(default_factory=set)
    # Redis time since which Redis has been reachable and whole (None: not known yet, or an
    # outage since: the next pass starts a new window)
    reachable_since_s: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                self.reachable_since_s = None
                log.warning("reconcile pass failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.core.settings.reconcile_interval_s)

    async def _clock(self) -> tuple[float, float]:
        """(Redis time now, since when Redis has been reachable and whole)."""
        pipe = self.core.redis.pipeline(transaction=False)
        pipe.time()
        pipe.set(self.core.keys.redis_epoch, "1", nx=True)
        now_reply, emptied = await pipe.execute()
        now_s = redis_seconds(now_reply)
        if emptied and self.reachable_since_s is not None:
            log.warning("redis lost its data: runners get a heartbeat window before any verdict")
        if emptied or self.reachable_since_s is None:
            self.reachable_since_s = now_s
        return now_s, self.reachable_since_s

    async def run_once(self) -> None:
        core = self.core
        held = self.held()
        if not held:
            return
        now_s, reachable_since_s = await self._clock()
        members: list[Any] = await core.redis.zrange(core.keys.active_runs, 0, -1, withscores=True)
        run_ids = [text(m) for m, _ in members]
        scores = {text(m): float(s) for m, s in members}
        pipe = core.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(core.keys.run(run_id), RUN_FIELDS)
        runs = [
            RunRecord.from_hash(
                {name: value for name, value in zip(RUN_FIELDS, values, strict=True) if value is not None}
            )
            for values in await pipe.execute()
        ]
        beats = await self._runner_heartbeats({r.runner_id for r in runs if r.runner_id}, now_s)
        for run_id, run in zip(run_ids, runs, strict=True):
            if not run.session_key:
                if now_ms() - scores[run_id] > ORPHAN_GRACE_MS:
                    await core.redis.zrem(core.keys.active_runs, run_id)
                continue
            if core.shard(run.session_key) not in held:
                continue
            seen_at, boot = beats.get(run.runner_id, (None, None))
            verdict = judge(
                run,
                runner_seen_at=seen_at,
                runner_boot=boot,
                now_s=now_s,
                claim_timeout_s=core.settings.run_claim_timeout_s,
                dead_after_s=core.settings.runner_dead_after_s,
                reachable_since_s=reachable_since_s,
            )
            if verdict == "drop":
                await core.redis.zrem(core.keys.active_runs, run_id)
            elif verdict != "keep" and run_id not in self.reported:
                self.reported.add(run_id)
                reason = UNCLAIMED_REASON if verdict == "unclaimed" else RUNNER_GONE_REASON
                log.warning(
                    "run lost",
                    extra={"run_id": run_id, "verdict": verdict, "session_key": run.session_key},
                )
                self.report_lost(
                    run.session_key, run_id, reason, "unclaimed" if verdict == "unclaimed" else "gone"
                )
        self.reported &= set(run_ids)
        await self._clean_waiting(held)
        await core.wake_waiters()

    async def _runner_heartbeats(
        self, runner_ids: set[str], now_s: float
    ) -> dict[str, tuple[float, str | None]]:
        """Runner id → (last heartbeat, boot id of the process) of the live ones."""
        if not runner_ids:
            return {}
        ordered = sorted(runner_ids)
        pipe = self.core.redis.pipeline(transaction=False)
        for runner_id in ordered:
            pipe.get(self.core.keys.heartbeat(RUNNER_SERVICE, runner_id))
        found: dict[str, tuple[float, str | None]] = {}
        for runner_id, raw in zip(ordered, await pipe.execute(), strict=True):
            if raw is None:
                continue
            try:
                beat = json.loads(raw)
                found[runner_id] = (seen_at(beat), str(beat["boot"]) if beat.get("boot") else None)
            except (ValueError, TypeError, AttributeError):
                found[runner_id] = (now_s, None)  # present but unreadable: the TTL says it is alive
        return found

    async def _clean_waiting(self, held: set[int]) -> None:
        """Drop FIFO entries of sessions (on our shards) that no longer want a run."""
        core = self.core
        waiting = [text(m) for m in await core.redis.zrange(core.keys.runs_waiting, 0, 200)]
        mine = [sk for sk in waiting if core.shard(sk) in held]
        if not mine:
            return
        pipe = core.redis.pipeline(transaction=False)
        for session_key in mine:
            pipe.hget(core.keys.session_state(session_key), "state")
            pipe.llen(core.keys.session_queue(session_key))
        results = await pipe.execute()
        stale = [
            sk
            for i, sk in enumerate(mine)
            if text(results[2 * i] or b"") != "debouncing" or int(results[2 * i + 1]) == 0
        ]
        if stale:
            await core.redis.zrem(core.keys.runs_waiting, *stale)

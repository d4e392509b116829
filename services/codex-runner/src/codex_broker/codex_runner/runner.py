"""The runner service: claim runs while it has free slots, drive them, obey controls, drain.

Claiming follows INTERFACES.md: read `runs` (group codex-runners) only with a free slot and
COUNT = free slots; per claimed run one pipeline runs the claim script on the run hash (refused
when the orchestrator fenced the run: libs/run_fence.py; else {runner_id, status=running} and
`cancel_requested` back) and ACKs, then `accepted` (seq 0) is queued first on the publisher —
concurrently with loading the Codex thread, so the claim adds no sequential round trip before
`turn/start`.

Codex lets one process at a time write a thread (its "thread writer lock", held while the thread
is loaded), so a follow-up turn must run where its thread is loaded. Each runner records itself
as the thread's writer when it loads one (`keys.codex_thread_runner`); a runner that takes a run
for a thread another live runner holds hands it to that runner's own stream
(`keys.runner_runs_stream`) instead of resuming it. A runner whose writer is gone resumes the
thread itself from the shared CODEX_HOME.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from codex_broker.codex_runner import metrics
from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.environment import native_codex_bin, prepare_profile
from codex_broker.codex_runner.events import EventPublisher
from codex_broker.codex_runner.supervisor import Supervisor
from codex_broker.codex_runner.turn import INTERRUPT_GRACE_S, TurnRun, steer_rejected
from codex_broker.libs import codex_sandbox, run_fence
from codex_broker.libs.bus import (
    DATA_FIELD,
    Consumer,
    ConsumerConfig,
    DeadLetter,
    Delivery,
    StreamBus,
    entry_data,
)
from codex_broker.libs.contracts import (
    RESTART_HANDOVER,
    ContractError,
    RunControl,
    RunEvent,
    RunRequest,
    decode,
)
from codex_broker.libs.heartbeat import redis_seconds, seen_at
from codex_broker.libs.hook_token import ensure_hook_token
from codex_broker.libs.keys import GROUP_RUNNERS
from codex_broker.libs.pipelined_script import PipelinedScript
from codex_broker.libs.session_token import ensure_session_token

log = logging.getLogger(__name__)

CLAIM_BLOCK_MS = 1000
HANDOVER_REASON = f"{RESTART_HANDOVER}: the broker is restarting; send again to continue"
# a thread's writer key is ours to delete only while it still names us (another runner may have
# resumed the thread since)
_RELEASE_WRITER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
THREAD_WRITER_TTL_S = 7 * 24 * 3600
REDIS_RETRY_S = 60.0  # how long a claim or hand-over waits for Redis to come back
T = TypeVar("T")


class Runner:
    def __init__(self, settings: Settings, redis: Redis, *, codex_bin: str) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        self.runner_id = settings.instance_id
        # One id per process: a run claimed by an earlier process under the same INSTANCE_ID
        # (a restart) is lost, and the orchestrator tells them apart by this id.
        self.boot_id = uuid.uuid4().hex[:12]
        self.own_stream = self.keys.runner_runs_stream(self.runner_id)
        self._claim_script = PipelinedScript(redis, run_fence.CLAIM_RUN)
        self._routing = 0  # runs being checked for another writer: they hold a slot meanwhile
        self.codex_bin = native_codex_bin(codex_bin)
        self.capacity = settings.max_concurrent_turns
        self.bus = StreamBus(
            redis, dead_letter_stream=self.keys.dead_letter_stream, maxlen=settings.stream_maxlen
        )
        self.publisher = EventPublisher(redis, maxlen=settings.stream_maxlen)
        self.supervisors: dict[str, Supervisor] = {}
        self.runs: dict[str, TurnRun] = {}
        self._run_tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor_tasks: list[asyncio.Task[None]] = []
        self._supervisors_stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        # why sealed sessions cannot run on this host (None: they can), from the boot probe
        self.sandbox_problem: str | None = None
        self.draining = False
        self._stop: asyncio.Event | None = None
        metrics.CAPACITY.set(self.capacity)

    # ---- service frame hooks ---------------------------------------------------------------
    def details(self) -> dict[str, Any]:
        # a draining runner takes no new runs: no capacity for the http-api's readiness
        capacity = 0 if self.draining else self.capacity
        return {
            "active": len(self.runs),
            "capacity": capacity,
            "boot": self.boot_id,
            "draining": self.draining,
        }

    async def ready(self) -> dict[str, Any]:
        down = [
            f"{name}: {sup.last_error or 'starting'}"
            for name, sup in self.supervisors.items()
            if not sup.ready.is_set()
        ]
        checks = {
            "codex_app_server": "ok" if not down else "; ".join(down)[:300],
            "sandbox": self._sandbox_check(),
        }
        if self.draining:
            checks["draining"] = f"fail: draining, {len(self.runs)} turns left"
        return checks

    def _sandbox_check(self) -> str:
        if not self.settings.seal_sessions:
            return "degraded: sessions are not sealed (SEAL_SESSIONS=false)"
        if self.sandbox_problem is not None:
            return f"fail: {self.sandbox_problem}"[:300]
        return "ok"

    async def _probe_sandbox(self) -> None:
        """Can Codex's sandbox seal a command here? Sealed runs are refused until it can."""
        if not self.settings.seal_sessions:
            log.warning("SEAL_SESSIONS=false: session commands run without the session profile")
            return
        home = self.supervisor("default").profile.codex_home
        self.sandbox_problem = await asyncio.to_thread(
            codex_sandbox.probe, self.codex_bin, home / "tmp" / "sandbox-probe", home
        )
        if self.sandbox_problem is not None:
            log.error(
                "sessions refused: Codex's sandbox cannot start here (set SEAL_SESSIONS=false to run "
                "them unsealed)",
                extra={"error": self.sandbox_problem},
            )

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        publisher = asyncio.create_task(self.publisher.run(), name="run-event-publisher")
        self.supervisor("default")  # warm before the first run arrives
        await self._probe_sandbox()
        control_stop = asyncio.Event()
        control = Consumer(
            self.bus,
            [self.keys.runner_control_stream(self.runner_id)],
            ConsumerConfig(group=GROUP_RUNNERS, consumer=self.runner_id, count=64, block_ms=CLAIM_BLOCK_MS),
            self._on_control,
        )
        control_task = asyncio.create_task(control.run(control_stop), name="runner-control")
        watchdog = asyncio.create_task(self._watchdog(stop), name="runner-watchdog")
        try:
            await self._claim_loop(stop, [self.keys.runs_stream, self.own_stream])
        finally:
            await self._drain()
            control_stop.set()
            watchdog.cancel()
            await asyncio.gather(control_task, watchdog, return_exceptions=True)
            threads = [t for sup in self.supervisors.values() for t in sup.loaded_threads]
            await self._close_supervisors()
            await self._release(threads)
            await self.publisher.close()
            await asyncio.gather(publisher, return_exceptions=True)

    def supervisor(self, profile: str) -> Supervisor:
        supervisor = self.supervisors.get(profile)
        if supervisor is None:
            supervisor = Supervisor(self.settings, prepare_profile(self.settings, profile), self.codex_bin)
            self.supervisors[profile] = supervisor
            self._supervisor_tasks.append(
                asyncio.create_task(supervisor.run(self._supervisors_stop), name=f"app-server-{profile}")
            )
        return supervisor

    # ---- claiming ----------------------------------------------------------------------------
    async def _claim_loop(self, stop: asyncio.Event, names: list[str]) -> None:
        # First what an earlier process under our INSTANCE_ID read but never claimed (killed
        # in between): pending entries of this consumer ("0"); then new entries (">").
        streams: dict[Any, Any] = dict.fromkeys(names, "0")
        backoff = 0.2
        group_ready = False
        while not stop.is_set():
            free = self.capacity - len(self.runs) - self._routing
            if free <= 0:
                self._slot_freed.clear()
                await _first(self._slot_freed, stop)
                continue
            try:
                if not group_ready:
                    for stream in streams:
                        await self.bus.ensure_group(stream, GROUP_RUNNERS)
                    # known to Redis before any claim (again after an outage: a restarted Redis
                    # has no scripts), so a claim's first try does not ack without claiming
                    await self._claim_script.load()
                    group_ready = True
                response: Any = await self.redis.xreadgroup(
                    GROUP_RUNNERS, self.runner_id, streams, count=free, block=CLAIM_BLOCK_MS
                )
                backoff = 0.2
            except redis_errors.ResponseError as exc:
                # the stream was deleted (before or while blocking): recreate the group and go on
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    raise
                group_ready = False
                continue
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                group_ready = False
                log.warning("redis unavailable while claiming runs", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 10.0)
                continue
            for stream_name, entries in response or []:
                gone = [entry_id for entry_id, fields in entries if not fields]
                if gone:  # a pending entry deleted from the stream comes back empty: report it
                    self._spawn(self.bus.report_missing(_text(stream_name), GROUP_RUNNERS, gone))
                for entry_id, fields in entries:
                    if fields:
                        self._start(_text(entry_id), fields, _text(stream_name))
            streams = {stream: ">" for stream in streams}

    def _start(self, entry_id: str, fields: Any, stream: str | None = None) -> None:
        stream = stream or self.keys.runs_stream
        raw = fields.get(DATA_FIELD.encode()) or fields.get(DATA_FIELD) or b""
        try:
            request = decode(RunRequest, raw)
        except ContractError as exc:
            data, _ = entry_data(fields)  # not UTF-8 fails decode above; keep it printable here
            delivery = Delivery(stream=stream, entry_id=entry_id, data=data)
            self._spawn(self.bus.dead_letter(delivery, GROUP_RUNNERS, f"ContractError: {exc}"))
            return
        if request.run_id in self.runs:  # a duplicate entry for a run we already hold
            self._spawn(self.redis.xack(stream, GROUP_RUNNERS, entry_id))
            return
        thread_id = request.thread_id
        if (
            stream == self.keys.runs_stream
            and thread_id
            and thread_id not in self.supervisor(request.auth_profile).loaded_threads
        ):
            self._routing += 1
            self._spawn(self._route(request, entry_id, fields, stream))
            return
        self._begin(request, entry_id, stream)

    async def _route(self, request: RunRequest, entry_id: str, fields: Any, stream: str) -> None:
        """Hand the run to the live runner holding its Codex thread, else run it here."""
        try:
            # Waits out a Redis outage: guessing "nobody" would resume a thread another
            # app-server holds, which Codex refuses.
            writer = await _redis_retry(lambda: self._live_writer(str(request.thread_id)))
            if writer is not None:
                data = fields.get(DATA_FIELD.encode()) or fields.get(DATA_FIELD)
                await _redis_retry(lambda: self._hand_over(writer, data, stream, entry_id))
                metrics.RUNS_HANDED_OVER.inc()
                log.info("run handed to its thread's runner", extra={"run_id": request.run_id, "to": writer})
                return
        except Exception as exc:  # Redis gone for long: running it here is the best left (resume waits)
            log.warning("thread writer lookup failed", extra={"run_id": request.run_id, "error": str(exc)})
        finally:
            self._routing -= 1
            self._slot_freed.set()
        self._begin(request, entry_id, stream)

    async def _hand_over(self, writer: str, data: Any, stream: str, entry_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(
            self.keys.runner_runs_stream(writer),
            {DATA_FIELD: data},
            maxlen=self.settings.stream_maxlen,
            approximate=True,
        )
        pipe.xack(stream, GROUP_RUNNERS, entry_id)
        await pipe.execute()

    async def _live_writer(self, thread_id: str) -> str | None:
        """Another runner that holds `thread_id` and still heartbeats (None: nobody, or us)."""
        writer = await self.redis.get(self.keys.codex_thread_runner(thread_id))
        if writer is None or _text(writer) == self.runner_id:
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.heartbeat("codex-runner", _text(writer)))
        pipe.time()
        beat, now = await pipe.execute()
        if beat is None:
            return None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            # A live runner beats every interval and may miss one (a Redis restart, a busy
            # loop); a SIGKILLed one leaves its key until the TTL. Taken for dead wrongly, the
            # thread's resume here would be refused; taken for alive wrongly, the run waits in
            # the dead runner's stream until it restarts (or the orchestrator's claim timeout).
            age = redis_seconds(now) - seen_at(json.loads(beat))  # both on Redis's clock
            if age > 2 * self.settings.heartbeat_interval_s + 2:
                return None
        return _text(writer)

    def _thread_loaded(self, thread_id: str) -> None:
        self._spawn(
            self.redis.set(self.keys.codex_thread_runner(thread_id), self.runner_id, ex=THREAD_WRITER_TTL_S)
        )

    async def _write_hook_token(self, session_key: str) -> None:
        try:
            await ensure_hook_token(self.redis, self.keys, self.settings.data_root.resolve(), session_key)
        except Exception:  # commits then lack co-author trailers; the turn itself is unaffected
            log.exception("commit hook token not written", extra={"session_key": session_key})

    async def _write_api_token(self, request: RunRequest) -> None:
        """The session's http-api token into its private file before the turn starts (a new
        Codex thread gets a new token); Redis outages are waited out like the claim's."""
        try:
            await _redis_retry(
                lambda: ensure_session_token(
                    self.redis,
                    self.keys,
                    self.settings.data_root.resolve(),
                    request.session_key,
                    ttl_s=self.settings.session_token_ttl_s,
                    rotate=request.thread_id is None,
                )
            )
        except Exception:  # the broker API is then closed to this turn; the answer still posts
            log.exception("session token not written", extra={"session_key": request.session_key})

    def _begin(self, request: RunRequest, entry_id: str, stream: str) -> None:
        run = TurnRun(
            request,
            runner_id=self.runner_id,
            keys=self.keys,
            settings=self.settings,
            supervisor=self.supervisor(request.auth_profile),
            publisher=self.publisher,
            on_thread_loaded=self._thread_loaded,
            api_token_ready=asyncio.ensure_future(self._write_api_token(request)),
            sandbox_problem=self.sandbox_problem,
        )
        self.runs[request.run_id] = run
        metrics.ACTIVE_TURNS.set(len(self.runs))
        if request.thread_id is None:
            # A new Codex thread: its commit-msg hook reads this file. Written beside thread/start
            # (milliseconds, long before Codex can run git), off the orchestrator's routing path.
            self._spawn(self._write_hook_token(request.session_key))
        claim = asyncio.ensure_future(self._claim(request, entry_id, stream))
        task = asyncio.create_task(run.drive(claim), name=f"run-{request.run_id}")
        self._run_tasks[request.run_id] = task
        task.add_done_callback(lambda _: self._run_done(request.run_id))

    async def _claim(self, request: RunRequest, entry_id: str, stream: str) -> run_fence.ClaimResult:
        """One round trip: take the run unless the orchestrator fenced it, and ack its entry.
        Every step is idempotent, so a Redis outage is waited out and the whole claim repeated
        (giving up would leave the run read but never announced: the thread stuck in "running")."""
        result = await _redis_retry(lambda: self._claim_once(request, entry_id, stream))
        if result == "fenced":
            metrics.RUNS_FENCED.inc()
            log.warning(
                "run refused: the orchestrator gave up on it before it was claimed",
                extra={"run_id": request.run_id, "session_key": request.session_key},
            )
            return result
        accepted = RunEvent(
            run_id=request.run_id,
            session_key=request.session_key,
            seq=0,
            kind="accepted",
            runner_id=self.runner_id,
        )
        # queued before any event of the turn (those follow the claim): seq 0 stays first
        self.publisher.publish(self.keys.run_events_stream_for(request.session_key), accepted)
        return result

    async def _claim_once(self, request: RunRequest, entry_id: str, stream: str) -> run_fence.ClaimResult:
        started_at_ms = int(time.time() * 1000)

        def queue(pipe: Pipeline) -> None:
            self._claim_script.queue(
                pipe,
                [self.keys.run(request.run_id)],
                run_fence.claim_args(self.runner_id, self.boot_id, started_at_ms),
            )
            pipe.xack(stream, GROUP_RUNNERS, entry_id)  # a fenced run's entry is done as well

        results = await self._claim_script.execute(queue)
        return run_fence.claim_result(results[0])

    def _run_done(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        self._run_tasks.pop(run_id, None)
        metrics.ACTIVE_TURNS.set(len(self.runs))
        self._slot_freed.set()

    # ---- controls ----------------------------------------------------------------------------
    async def _on_control(self, delivery: Delivery) -> None:
        control = decode(RunControl, delivery.data)
        if control.kind == "drain":
            # what SIGTERM does: the service stops, this runner drains, the supervisor (k8s,
            # compose, `up`) starts a fresh one
            log.info("drain requested", extra={"control_id": control.control_id})
            if self._stop is not None:
                self._stop.set()
            return
        run = self.runs.get(control.run_id)
        if run is None:
            log.info(
                "control for a run not held here", extra={"run_id": control.run_id, "kind": control.kind}
            )
            if control.kind == "steer":
                # The run ended (or this is a restarted runner): report it before the control is
                # acked, so the message goes back to the orchestrator instead of being lost.
                await self.bus.publish(
                    self.keys.run_events_stream_for(control.session_key),
                    steer_rejected(
                        control, runner_id=self.runner_id, reason="the run is not held by this runner"
                    ),
                )
            return
        if control.kind == "interrupt":
            self._spawn(run.interrupt())
        elif control.kind == "steer":
            self._spawn(run.steer(control))
        else:
            if control.approval is None:
                raise DeadLetter("approval control without a decision")
            if not run.decide(control.approval):
                log.info("approval decision for no pending request", extra={"run_id": control.run_id})

    # ---- watchdog and drain ------------------------------------------------------------------
    async def _watchdog(self, stop: asyncio.Event) -> None:
        limit = self.settings.watchdog_idle_s
        interval = min(5.0, max(0.05, limit / 4))
        fired: set[str] = set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            now = time.monotonic()
            for run_id, run in list(self.runs.items()):
                if run.terminal is None and run_id not in fired and now - run.last_activity > limit:
                    fired.add(run_id)
                    metrics.WATCHDOG_INTERRUPTS.inc()
                    log.warning("watchdog interrupts an idle turn", extra={"run_id": run_id})
                    self._spawn(run.interrupt(f"watchdog: no event from Codex for {limit:g}s; interrupted"))
            fired &= set(self.runs)

    async def _drain(self) -> None:
        """Claim nothing new from the shared stream (the caller stopped), let turns finish within
        the grace, then hand the rest over: each is interrupted with the restart notice, and its
        session's next message continues the Codex thread on another runner.

        Runs handed to this runner's own stream meanwhile (a follow-up in a thread only its
        app-server may write) are still taken during the grace: no other runner can run them
        before this one lets go of the thread."""
        self.draining = True
        log.info("draining", extra={"active": len(self.runs), "grace_s": self.settings.drain_grace_s})
        own_stop = asyncio.Event()
        own = asyncio.create_task(self._claim_loop(own_stop, [self.own_stream]), name="runner-own-runs")
        try:
            await self._wait_runs_done(self.settings.drain_grace_s)
        finally:
            own_stop.set()
            await asyncio.gather(own, return_exceptions=True)
        if self.runs:
            log.warning("drain grace over: handing turns over", extra={"active": len(self.runs)})
            metrics.RUNS_HANDED_OVER_ON_DRAIN.inc(len(self.runs))
        for run in list(self.runs.values()):
            self._spawn(run.interrupt(HANDOVER_REASON))
        await self._wait_runs_done(INTERRUPT_GRACE_S + 5)
        for task in list(self._run_tasks.values()):
            task.cancel()
        await asyncio.gather(*self._run_tasks.values(), return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _release(self, threads: list[str]) -> None:
        """After the app-servers closed: the threads are free to resume elsewhere, and runs
        handed to this runner's own stream that it never took go back to the shared stream."""
        try:
            for thread_id in threads:
                await self.redis.eval(
                    _RELEASE_WRITER, 1, self.keys.codex_thread_runner(thread_id), self.runner_id
                )  # type: ignore[misc]
            while True:
                response: Any = await self.redis.xreadgroup(
                    GROUP_RUNNERS, self.runner_id, {self.own_stream: ">"}, count=100
                )
                entries = [(entry_id, fields) for _, batch in response or [] for entry_id, fields in batch]
                if not entries:
                    return
                for entry_id, fields in entries:
                    data = fields.get(DATA_FIELD.encode()) or fields.get(DATA_FIELD)
                    await self._hand_over_to_all(data, _text(entry_id))
        except Exception:  # Redis gone: those runs are reported unclaimed by the orchestrator
            log.exception("could not release this runner's threads and runs")

    async def _hand_over_to_all(self, data: Any, entry_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(
            self.keys.runs_stream, {DATA_FIELD: data}, maxlen=self.settings.stream_maxlen, approximate=True
        )
        pipe.xack(self.own_stream, GROUP_RUNNERS, entry_id)
        await pipe.execute()

    async def _wait_runs_done(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.runs and time.monotonic() < deadline:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), max(0.0, deadline - time.monotonic()))

    async def _close_supervisors(self) -> None:
        self._supervisors_stop.set()
        await asyncio.gather(*(sup.close() for sup in self.supervisors.values()), return_exceptions=True)
        await asyncio.gather(*self._supervisor_tasks, return_exceptions=True)

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _redis_retry(call: Callable[[], Awaitable[T]], budget_s: float = REDIS_RETRY_S) -> T:
    """`call()` again with backoff while Redis is unreachable, for at most `budget_s`."""
    deadline = time.monotonic() + budget_s
    delay = 0.1
    while True:
        try:
            return await call()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

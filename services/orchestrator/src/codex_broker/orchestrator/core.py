"""The orchestrator's shared context: settings, Redis, keys, policy, and the small writes every
handler makes (outbound actions, timeline, seen marks, controls), sessions, run-slot admission.

The turn lifecycle is decided in machine.py and applied by turns.py; a RunRequest is built in
run_request.py. Everything that changes a session runs inside that session's worker (see
dispatch.py), so a read-decide-write sequence is never interleaved with another one of the same
session.
Writes go out as one pipeline per step, effects first and the bookkeeping that makes them
idempotent last; streams are written in the same round trip but never inside a transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs import authors, paths, run_fence, session_token
from codex_broker.libs import channel_defaults as stored_defaults
from codex_broker.libs.audit import AuditLog
from codex_broker.libs.bus import StreamBus, xadd_trim
from codex_broker.libs.contracts import (
    Coordinates,
    DownloadPayload,
    HistoryPayload,
    InboundEvent,
    OutboundAction,
    OutboundResult,
    PostPayload,
    RunControl,
    decode,
    encode,
    new_id,
)
from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.keys import Keys, shard_of
from codex_broker.libs.records import SessionRecord
from codex_broker.libs.rpc import RpcTimeout, wait_reply
from codex_broker.libs.usage_counters import OverrideSwitch
from codex_broker.orchestrator import metrics, render, timers
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.policy import Policy
from codex_broker.orchestrator.workspace_rules import WorkspaceConfig, parse_homes

log = logging.getLogger(__name__)

RUN_TTL_S = 7 * 24 * 3600
ENDED_FIELD = run_fence.ENDED_FIELD  # set once the orchestrator has finished the run
RUN_INPUTS_FIELD = "inputs"  # RunRecord.inputs
USER_USAGE_TTL_S = 40 * 24 * 3600
SEEN_KEEP = 500
TIMELINE_KEEP = 500
TRIM_CHANCE = 1 / 8  # capped lists/sets are trimmed on one write in eight (bounded all the same)
CONTROL_MAXLEN = 10_000  # a runner's control stream: short-lived entries, read at once

# Fair FIFO admission for MAX_ACTIVE_RUNS; KEYS share one cluster slot (see keys.runs_waiting).
ADMIT_LUA = """
local active = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[4])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
local ahead = rank or redis.call('ZCARD', KEYS[2])
if max <= 0 or active + ahead < max then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return -1
end
if not rank then redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1]) end
return ahead
"""


BLOCK_SLICE_S = 2.0  # redis-py 8 clients default to a 5 s socket timeout: block in shorter slices


async def wait_result(redis: Redis, reply_key: str, *, timeout_s: float) -> OutboundResult:
    """Wait for an RPC reply for up to `timeout_s`, never blocking one command longer than a slice."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await wait_reply(
                redis, reply_key, OutboundResult, timeout_s=max(0.01, min(BLOCK_SLICE_S, remaining))
            )
        except RpcTimeout:
            if remaining <= BLOCK_SLICE_S:
                raise


BACKFILLED_PREFIX = "msg:"  # a platform message id in the session's seen set: given as history


def backfilled_member(message_id: str) -> str:
    return BACKFILLED_PREFIX + message_id


def now_ms() -> int:
    return int(time.time() * 1000)


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_str_dict(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def coords_of(session: dict[str, str], session_key: str) -> Coordinates:
    if session.get("platform"):
        return Coordinates(
            platform=session["platform"],  # type: ignore[arg-type]
            conversation_id=session["conversation_id"],
            root_message_id=session["root_message_id"],
        )
    platform, conversation, root = session_key.split(":", 2)
    return Coordinates(platform=platform, conversation_id=conversation, root_message_id=root)  # type: ignore[arg-type]


@dataclass
class QueueEntry:
    event: InboundEvent
    download_reply: str | None = None

    def dump(self) -> str:
        return json.dumps({"event": json.loads(encode(self.event)), "download": self.download_reply})

    @classmethod
    def load(cls, raw: Any) -> QueueEntry:
        body = json.loads(text(raw))
        return cls(decode(InboundEvent, json.dumps(body["event"])), body.get("download"))


@dataclass
class Core:
    settings: Settings
    redis: Redis
    keys: Keys
    bus: StreamBus
    policy: Policy
    admit_script: Any = None
    data_root: Path = field(default_factory=Path)
    audit: AuditLog = field(default_factory=lambda: AuditLog(Keys()))
    defaults_cache: stored_defaults.Cache = field(default_factory=stored_defaults.Cache)
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    # side effects that must not delay a turn (git identity bookkeeping); held so they finish
    _side_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # are there budget overrides at all? (budget_gate: no budgets, no reads on the path)
    budget_overrides: OverrideSwitch = field(default_factory=OverrideSwitch)

    @classmethod
    def create(cls, settings: Settings, redis: Redis) -> Core:
        keys = settings.keys
        policy = Policy(
            allowed_users=frozenset(settings.allowed_users),
            allowed_channels=frozenset(settings.allowed_channels),
            admins=frozenset(settings.admins),
            dms_allowed=settings.dms_allowed,
            mention_required=settings.mention_required,
        )
        core = cls(
            settings=settings,
            redis=redis,
            keys=keys,
            bus=StreamBus(redis, dead_letter_stream=keys.dead_letter_stream, maxlen=settings.stream_maxlen),
            policy=policy,
            data_root=Path(settings.data_root).resolve(),
            audit=AuditLog.from_settings(settings),
            workspace=WorkspaceConfig(
                homes=parse_homes(settings.workspace_home_channels),
                root=Path(settings.workspace_root).resolve() if settings.workspace_root else None,
            ),
        )
        core.admit_script = redis.register_script(ADMIT_LUA)
        return core

    # ---- small effects -----------------------------------------------------------------------
    def outbound_stream(self, coords: Coordinates) -> str:
        return self.keys.outbound_stream(coords.platform)

    def add_outbound(self, pipe: Any, action: OutboundAction) -> None:
        stream = self.keys.outbound_stream(action.platform)
        # never MAXLEN: trimmed only below the ingress group's ack horizon (libs/bus.py)
        pipe.xadd(stream, {"data": encode(action)}, **xadd_trim(stream, self.settings.stream_maxlen))

    def add_timeline(self, pipe: Any, session_key: str, kind: str, summary: str) -> None:
        entry = json.dumps({"at_ms": now_ms(), "kind": kind, "summary": summary[:300]})
        pipe.lpush(self.keys.session_timeline(session_key), entry)
        if random.random() < TRIM_CHANCE:  # capped on average; saves a command per write
            pipe.ltrim(self.keys.session_timeline(session_key), 0, TIMELINE_KEEP - 1)

    def add_seen(self, pipe: Any, session_key: str, event_id: str) -> None:
        pipe.zadd(self.keys.session_seen(session_key), {event_id: now_ms()})
        if random.random() < TRIM_CHANCE:
            pipe.zremrangebyrank(self.keys.session_seen(session_key), 0, -SEEN_KEEP - 1)

    async def reply(self, coords: Coordinates, session_key: str, action_id: str, body: str) -> None:
        action = render.outbound(coords, session_key, PostPayload(text=body), action_id)
        await self.bus.publish(self.outbound_stream(coords), action)

    async def publish_control(self, runner_id: str, control: RunControl) -> None:
        await self.bus.publish(self.keys.runner_control_stream(runner_id), control, maxlen=CONTROL_MAXLEN)

    def add_control(self, pipe: Any, runner_id: str, control: RunControl) -> None:
        """`publish_control` as part of the caller's round trip."""
        pipe.xadd(
            self.keys.runner_control_stream(runner_id),
            {"data": encode(control)},
            maxlen=CONTROL_MAXLEN,
            approximate=True,
        )

    def in_background(self, work: Any, what: str) -> None:
        """Run bookkeeping beside the turn (BRIEF §5b: nothing extra on the path to turn/start)."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("background bookkeeping failed", extra={"what": what})

        task = asyncio.create_task(guarded())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def note_git_identity(self, event: InboundEvent) -> None:
        """An inferred GitHub author for a new email (the commit hook's token is the runner's:
        it writes it when it starts a new Codex thread)."""
        if event.actor.email and not event.actor.is_bot and event.kind == "message":
            self.in_background(
                authors.record_inferred_author(self.redis, self.keys, event.platform, event.actor),
                "inferred author",
            )

    # ---- sessions ----------------------------------------------------------------------------
    async def active_profile(self) -> str:
        """The auth profile new sessions use: the one activated in the admin page, else AUTH_PROFILE."""
        active = await self.redis.get(self.keys.active_auth_profile)
        return text(active) if active else self.settings.auth_profile

    async def create_session(
        self, event: InboundEvent, *, defer: Any | None = None, profile: str | None = None
    ) -> dict[str, str]:
        """First message of a session: workspace, record, and (maybe) the backfill request.

        With `defer` (a pipeline) the writes join the caller's round trip — unless a history
        request must go out now, so that it runs while the turn is prepared. `profile`: the
        active auth profile, when the caller read it already (None: read it here)."""
        session_key = event.session_key
        if profile is None:
            profile = await self.active_profile()
        # only a path: whoever writes into it first creates it (the runner before thread/start,
        # an ingress saving a download) — no file-system work on the routing path
        workspace = paths.session_workspace(self.data_root, session_key)
        now = now_ms()
        record = SessionRecord(
            platform=event.platform,
            conversation_id=event.conversation_id,
            root_message_id=event.root_message_id,
            workspace=str(workspace),
            auth_profile=profile,
            is_direct=event.is_direct,
            created_at_ms=now,
            last_activity_ms=now,
        )
        backfill = self._wants_backfill(event)
        pipe = defer if defer is not None and not backfill else self.redis.pipeline(transaction=False)
        if backfill:
            reply_key = self.keys.rpc_reply(new_id())
            record = record.replace(backfill_reply=reply_key, backfill_requested_ms=now)
            history = HistoryPayload(
                before_message_id=event.message_id, limit=self.settings.slack_initial_thread_history_count
            )
            self.add_outbound(
                pipe,
                render.outbound(
                    event.coords, session_key, history, f"history:{event.event_id}", reply_to=reply_key
                ),
            )
        stored = record.to_hash()
        pipe.hset(self.keys.session(session_key), mapping=dict[Any, Any](stored))
        pipe.zadd(self.keys.sessions_index, {session_key: now})
        self.add_timeline(pipe, session_key, "session", "session created")
        if pipe is not defer:
            await pipe.execute()
        return stored

    def _wants_backfill(self, event: InboundEvent) -> bool:
        """The first mention inside an existing thread (not its root, not a DM) looks back once."""
        return (
            self.settings.slack_initial_thread_history_count > 0
            and event.kind == "message"
            and not event.is_direct
            and bool(event.message_id)
            and event.message_id != event.root_message_id
        )

    # ---- enqueue -----------------------------------------------------------------------------
    def download_request(self, pipe: Any, event: InboundEvent, session: dict[str, str]) -> str | None:
        """Ask the ingress to fetch the message's files now, so they are ready when the turn starts."""
        if not event.attachments or event.kind != "message":
            return None
        reply_key = self.keys.rpc_reply(new_id())
        dest = (
            Path(session["workspace"]) / ".attachments" / paths.safe_name(event.message_id or event.event_id)
        )
        payload = DownloadPayload(
            attachments=event.attachments, dest_dir=str(dest), max_bytes=self.settings.attachment_max_bytes
        )
        self.add_outbound(
            pipe,
            render.outbound(
                event.coords, event.session_key, payload, f"download:{event.event_id}", reply_to=reply_key
            ),
        )
        return reply_key

    def touch(self, pipe: Any, event: InboundEvent, *, new_session: bool = False) -> None:
        now = now_ms()
        if not new_session:  # a new record already carries both
            pipe.hset(self.keys.session(event.session_key), "last_activity_ms", str(now))
            pipe.zadd(self.keys.sessions_index, {event.session_key: now})
        if event.kind != "job_callback" and not event.actor.is_bot:
            self.note_git_identity(event)
            pipe.hset(
                self.keys.session_participants(event.session_key),
                event.actor.id,
                event.actor.display_name or event.actor.id,
            )

    # ---- starting a turn (turns.py decides when; these build and publish) -------------------
    async def admit(self, session_key: str, run_id: str, *, pipe: Any | None = None) -> bool:
        """Take a MAX_ACTIVE_RUNS slot (fair FIFO), or join the line for one (False; what the
        session does then is the turn machine's SlotRefused).

        Without a limit there is nothing to decide: with `pipe` the slot is recorded in the
        caller's round trip (the run's own writes) instead of a script call of its own."""
        if self.settings.max_active_runs <= 0 and pipe is not None:
            pipe.zrem(self.keys.runs_waiting, session_key)  # left over from a limited config
            pipe.zadd(self.keys.active_runs, {run_id: now_ms()})
            return True
        ahead = await self.admit_script(
            keys=[self.keys.active_runs, self.keys.runs_waiting],
            args=[session_key, run_id, now_ms(), self.settings.max_active_runs],
        )
        if int(ahead) < 0:
            return True
        metrics.RUNS_WAITING.inc()
        return False

    async def revoke_token(self, session_key: str) -> None:
        """`/new`: the old thread's commands lose the broker API now; the runner mints the new
        thread's token into the session's token file when its first run starts."""
        await session_token.revoke_session_token(self.redis, self.keys, session_key)

    # ---- run slots ---------------------------------------------------------------------------
    async def wake_waiters(self) -> None:
        """A run slot freed up: the sessions at the head of the FIFO get a start tick now."""
        if self.settings.max_active_runs <= 0:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.active_runs)
        pipe.zrange(self.keys.runs_waiting, 0, self.settings.max_active_runs - 1)
        active, waiting = await pipe.execute()
        free = self.settings.max_active_runs - int(active)
        if free <= 0 or not waiting:
            return
        pipe = self.redis.pipeline(transaction=False)
        for raw in waiting[:free]:
            timers.add_schedule(pipe, self.keys, "start", text(raw), now_ms(), only_earlier=True)
        await pipe.execute()

    def shard(self, session_key: str) -> int:
        return shard_of(session_key, self.keys.shard_count)

    async def first_time(self, key: str, ttl_s: int) -> bool:
        return await Idempotency(self.redis, self.keys, "orchestrator").first_time(key, ttl_s=ttl_s)


def flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value in ("1", "true", "on", "yes")

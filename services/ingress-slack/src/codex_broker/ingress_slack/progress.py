"""The live view of a run: Slack native streaming, else one progress message updated in place.

Snapshots arrive on the outbound stream with increasing `seq`. A snapshot is applied at once
when the surface's last update is at least `interval_s` old; otherwise it is parked as the
*pending* snapshot in Redis (newer pending replaces older: the last one wins) and a timer flushes
it when the second has passed. The stream entry is acked right after parking, so nothing is held
un-acked; the state lives in Redis (`keys.outbound_ref("slack", "progress:<id>")`) so another
replica can continue a view, and a parked snapshot lost with a crashed replica is superseded by
the next snapshot or the finish. The finish is never parked and never waits: it is applied at once
(the one update allowed inside the interval), with the answer posted before the view's update.

State hash fields: surface (native|message), channel, thread_ts, ts, control_ts, seq (applied),
at_ms (last applied), stream (JSON StreamState), finished, pending (OutboundAction JSON),
pending_seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.capabilities import NATIVE_STREAM, Capabilities
from codex_broker.ingress_slack.errors import SlackCallError
from codex_broker.ingress_slack.posting import Poster
from codex_broker.ingress_slack.render import (
    StreamState,
    actions_block,
    post_chunks,
    progress_blocks,
    progress_text,
    stop_button,
    stream_delta,
    stream_state_dict,
    stream_state_from,
    text_pieces,
)
from codex_broker.ingress_slack.slack_api import SlackApi
from codex_broker.libs.contracts import OutboundAction, ProgressPayload, decode, encode
from codex_broker.libs.keys import Keys
from codex_broker.libs.lease import Lease

log = logging.getLogger(__name__)

STATE_TTL_S = 2 * 86400
# One applier per view: a short lease renewed while it applies, so a replica killed mid-apply
# blocks the view (and the run's answer marker) for about LOCK_MS, well inside the redeliveries
# of MAX_DELIVERIES; a long fixed lease outlived them and the final answer was dead-lettered.
LOCK_MS = 10_000
LOCK_RENEW_S = 3.0
LOCK_WAIT_S = 5.0
NATIVE = "native"
MESSAGE = "message"
FLUSH_RETRIES = 5


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class ViewState:
    surface: str = ""
    channel: str = ""
    thread_ts: str = ""
    ts: str = ""
    control_ts: str = ""
    seq: int = -1
    at_ms: int = 0
    stream: StreamState = field(default_factory=StreamState)
    finished: bool = False
    pending_seq: int = -1
    pending: str = ""

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> ViewState:
        f = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            surface=f.get("surface", ""),
            channel=f.get("channel", ""),
            thread_ts=f.get("thread_ts", ""),
            ts=f.get("ts", ""),
            control_ts=f.get("control_ts", ""),
            seq=int(f.get("seq", -1)),
            at_ms=int(f.get("at_ms", 0)),
            stream=stream_state_from(json.loads(f["stream"])) if f.get("stream") else StreamState(),
            finished=f.get("finished") == "1",
            pending_seq=int(f.get("pending_seq", -1)),
            pending=f.get("pending", ""),
        )

    def to_hash(self) -> dict[str, str]:
        return {
            "surface": self.surface,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "ts": self.ts,
            "control_ts": self.control_ts,
            "seq": str(self.seq),
            "at_ms": str(self.at_ms),
            "stream": json.dumps(stream_state_dict(self.stream)),
            "finished": "1" if self.finished else "0",
        }


class ProgressViews:
    def __init__(
        self,
        *,
        api: SlackApi,
        redis: Redis,
        keys: Keys,
        poster: Poster,
        capabilities: Capabilities,
        interval_s: float = 1.0,
        native_enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.redis = redis
        self.keys = keys
        self.poster = poster
        self.capabilities = capabilities
        self.interval_ms = int(interval_s * 1000)
        self.native_enabled = native_enabled
        self._clock = clock
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()  # views with a parked snapshot not yet flushed

    # ---- entry points ------------------------------------------------------------------------

    async def handle(self, action: OutboundAction) -> None:
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        async with self._locked(progress.progress_id, wait_s=LOCK_WAIT_S) as state:
            if state is None:
                raise RuntimeError(f"progress view {progress.progress_id} busy on another replica")
            if state.finished or progress.seq <= max(state.seq, state.pending_seq):
                metrics.PROGRESS.labels(surface=state.surface or "none", result="stale").inc()
                return
            wait_ms = state.at_ms + self.interval_ms - self._now_ms()
            if progress.phase != "finish" and state.surface and wait_ms > 0:
                await self._park(progress.progress_id, action, wait_ms / 1000)
                return
            # The finish is applied at once, never parked nor waited for: it is the view's last
            # update, so it costs at most one extra update within the interval, and waiting here
            # would hold up every outbound action behind it (the consumer handles batches).
            if progress.phase == "finish" and state.surface == MESSAGE and progress.final_text:
                # The answer is what the thread waits for: it goes out before the view's own update
                # (posting is resumable, so `_finish` does not post it again).
                await self._post_answer(action, state, progress.final_text)
            await self._apply(action, state)

    async def flush(self, progress_id: str) -> None:
        """Apply the parked snapshot of one view now (timer, shutdown)."""
        async with self._locked(progress_id, wait_s=0.5) as state:
            if state is None:
                self._schedule(progress_id, self.interval_ms / 1000)
                return
            if state.finished or state.pending_seq <= state.seq or not state.pending:
                return
            await self._apply(decode(OutboundAction, state.pending), state)

    async def close(self) -> None:
        """On shutdown: flush every parked snapshot instead of waiting for the timers."""
        timers = list(self._timers.items())
        for _, task in timers:
            task.cancel()
        await asyncio.gather(*(t for _, t in timers), return_exceptions=True)
        self._dirty.clear()
        for progress_id, _ in timers:
            with contextlib.suppress(Exception):
                await self.flush(progress_id)

    # ---- parking and timers ------------------------------------------------------------------

    async def _park(self, progress_id: str, action: OutboundAction, delay_s: float) -> None:
        key = self._key(progress_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"pending": encode(action), "pending_seq": str(action.payload.seq)})  # type: ignore[union-attr]
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()
        metrics.PROGRESS.labels(surface="any", result="coalesced").inc()
        self._schedule(progress_id, delay_s)

    def _schedule(self, progress_id: str, delay_s: float) -> None:
        self._dirty.add(progress_id)
        if progress_id not in self._timers:
            self._timers[progress_id] = asyncio.create_task(self._flush_later(progress_id, delay_s))

    async def _flush_later(self, progress_id: str, delay_s: float) -> None:
        """One timer per view; it keeps flushing while snapshots get parked meanwhile."""
        failures = 0
        try:
            while progress_id in self._dirty:
                await asyncio.sleep(delay_s)
                self._dirty.discard(progress_id)
                delay_s = self.interval_ms / 1000
                try:
                    await self.flush(progress_id)
                except SlackCallError as exc:
                    if exc.permanent:  # the next snapshot or the finish supersedes this one
                        log.warning(
                            "dropping parked progress", extra={"progress_id": progress_id, "error": str(exc)}
                        )
                        continue
                    failures = self._retry_later(progress_id, failures, exc)
                    delay_s = min(30.0, delay_s * 2**failures)
                except Exception as exc:
                    failures = self._retry_later(progress_id, failures, exc)
                    delay_s = min(30.0, delay_s * 2**failures)
        finally:
            self._timers.pop(progress_id, None)

    def _retry_later(self, progress_id: str, failures: int, exc: Exception) -> int:
        log.warning("progress flush failed", extra={"progress_id": progress_id, "error": repr(exc)})
        if failures + 1 < FLUSH_RETRIES:
            self._dirty.add(progress_id)
        return failures + 1

    # ---- applying a snapshot -----------------------------------------------------------------

    async def _apply(self, action: OutboundAction, state: ViewState) -> None:
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        state.channel = state.channel or action.conversation_id
        state.thread_ts = state.thread_ts or action.root_message_id
        if not state.surface:
            if progress.phase == "finish":
                await self._finish_without_view(action, state)
            else:
                await self._open(action, state)
        elif state.surface == NATIVE:
            await self._native_update(action, state)
        else:
            await self._message_update(progress, state)
        if progress.phase == "finish" and not state.finished:
            await self._finish(action, state)
        state.seq = progress.seq
        state.at_ms = self._now_ms()
        await self._save(progress.progress_id, state)
        metrics.PROGRESS.labels(surface=state.surface or "none", result="applied").inc()

    async def _open(self, action: OutboundAction, state: ViewState) -> None:
        if await self._native_possible(action):
            try:
                await self._native_start(action, state)
                return
            except SlackCallError as exc:
                if exc.verdict != "refused":
                    raise
                await self.capabilities.refuse(NATIVE_STREAM, f"{exc.method}: {exc.error}")
        await self._message_start(action.payload, state)  # type: ignore[arg-type]

    async def _native_possible(self, action: OutboundAction) -> bool:
        if not self.native_enabled or not await self.capabilities.allowed(NATIVE_STREAM):
            return False
        return action.conversation_id.startswith("D") or await self._recipient(action) is not None

    async def _recipient(self, action: OutboundAction) -> tuple[str, str] | None:
        raw = await self.redis.get(recipient_key(self.keys, action.conversation_id, action.root_message_id))
        if not raw:
            return None
        team, _, user = _text(raw).partition(":")
        return (team, user) if team and user else None

    # ---- native streaming --------------------------------------------------------------------

    async def _native_start(self, action: OutboundAction, state: ViewState) -> None:
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        delta = stream_delta(progress, StreamState())
        first, *rest = text_pieces(delta.markdown_text)
        args: dict[str, Any] = {
            "channel": action.conversation_id,
            "thread_ts": action.root_message_id,
            "task_display_mode": "timeline",
            "chunks": _chunks(delta.chunks, first) or None,
        }
        recipient = await self._recipient(action)
        if recipient is not None:
            args["recipient_team_id"], args["recipient_user_id"] = recipient
        data = await self.api.call("chat.startStream", **args)
        state.surface, state.ts, state.stream = NATIVE, str(data.get("ts") or ""), delta.state
        await self._save(progress.progress_id, state)  # a redelivery must not start a second stream
        for piece in rest:
            await self.api.call(
                "chat.appendStream", channel=state.channel, ts=state.ts, chunks=_chunks([], piece)
            )
        if progress.show_stop:
            await self._post_control(progress, state)

    async def _post_control(self, progress: ProgressPayload, state: ViewState) -> None:
        """Streams cannot carry buttons until they stop: the Stop button is a message of its own."""
        stop = stop_button(progress.run_id or progress.progress_id)
        try:
            control = await self.api.call(
                "chat.postMessage",
                channel=state.channel,
                thread_ts=state.thread_ts,
                text="Working… (Stop interrupts the run)",
                blocks=[actions_block([stop])],
            )
        except SlackCallError as exc:  # the stream is up; a missing button beats a second stream
            log.warning("could not post the stop button", extra={"error": exc.error})
            return
        state.control_ts = str(control.get("ts") or "")

    async def _native_update(self, action: OutboundAction, state: ViewState) -> None:
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        if progress.phase == "finish":
            return  # the finish appends its delta in chat.stopStream
        delta = stream_delta(progress, state.stream)
        if delta.empty:
            return
        try:
            for index, piece in enumerate(text_pieces(delta.markdown_text)):
                chunks = _chunks(delta.chunks if index == 0 else [], piece)
                if chunks:
                    await self.api.call(
                        "chat.appendStream", channel=state.channel, ts=state.ts, chunks=chunks
                    )
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            await self._degrade(progress, state, exc)
            return
        state.stream = delta.state

    async def _degrade(self, progress: ProgressPayload, state: ViewState, exc: SlackCallError) -> None:
        """The stream broke mid-run (scope removed, stream expired): continue as a progress message."""
        log.warning("native stream failed; continuing with a progress message", extra={"error": str(exc)})
        if exc.verdict == "refused":
            await self.capabilities.refuse(NATIVE_STREAM, f"{exc.method}: {exc.error}")
        await self._drop_control(state)
        await self._message_start(progress, state)

    async def _native_finish(self, action: OutboundAction, state: ViewState) -> str | None:
        """Stop the stream with the rest of the answer; returns text to post separately, if any."""
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        final = progress.final_text
        streamed = progress.answer_text[: state.stream.streamed_len]
        post_after: str | None = None
        answer = progress.answer_text
        if final is not None:
            if final.startswith(streamed):
                answer = final
            else:
                post_after = final
        delta = stream_delta(progress, state.stream, answer=answer)
        pieces = text_pieces(delta.markdown_text)
        try:
            for piece in pieces[:-1]:
                await self.api.call(
                    "chat.appendStream", channel=state.channel, ts=state.ts, chunks=_chunks([], piece)
                )
            await self.api.call(
                "chat.stopStream",
                channel=state.channel,
                ts=state.ts,
                chunks=_chunks(delta.chunks, pieces[-1]) or None,
            )
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            log.warning("chat.stopStream failed; posting the answer instead", extra={"error": str(exc)})
            post_after = final if final is not None else progress.answer_text[state.stream.streamed_len :]
        state.stream = delta.state
        await self._drop_control(state)
        return post_after

    async def _drop_control(self, state: ViewState) -> None:
        if not state.control_ts:
            return
        try:
            await self.api.call("chat.delete", channel=state.channel, ts=state.control_ts)
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            log.info("could not delete the stop-button message", extra={"error": exc.error})
        state.control_ts = ""

    # ---- fallback: one message updated in place ----------------------------------------------

    async def _message_start(self, progress: ProgressPayload, state: ViewState) -> None:
        text = progress_text(progress)
        data = await self.api.call(
            "chat.postMessage",
            channel=state.channel,
            thread_ts=state.thread_ts,
            text=text,
            blocks=progress_blocks(progress, text),
        )
        state.surface, state.ts = MESSAGE, str(data.get("ts") or "")

    async def _message_update(self, progress: ProgressPayload, state: ViewState) -> None:
        if progress.phase == "finish" and progress.final_text is not None:
            progress = progress.model_copy(update={"answer_text": ""})  # the answer follows as its own post
        text = progress_text(progress)
        await self.api.call(
            "chat.update",
            channel=state.channel,
            ts=state.ts,
            text=text,
            blocks=progress_blocks(progress, text),
        )

    # ---- finishing -----------------------------------------------------------------------------

    async def _finish(self, action: OutboundAction, state: ViewState) -> None:
        progress = action.payload
        assert isinstance(progress, ProgressPayload)
        post_after = progress.final_text
        if state.surface == NATIVE:
            post_after = await self._native_finish(action, state)
        if post_after:
            await self._post_answer(action, state, post_after)
        state.finished = True

    async def _post_answer(self, action: OutboundAction, state: ViewState, text: str) -> None:
        await self.poster.post_pieces(
            channel=state.channel or action.conversation_id,
            thread_ts=state.thread_ts or action.root_message_id,
            pieces=post_chunks(text, "markdown"),
            parts_id=f"final:{action.payload.progress_id}",  # type: ignore[union-attr]
        )

    async def _finish_without_view(self, action: OutboundAction, state: ViewState) -> None:
        """The run ended before any live view was shown: only the answer is posted."""
        state.surface = "none"

    # ---- state, locks ----------------------------------------------------------------------------

    def _key(self, progress_id: str) -> str:
        return self.keys.outbound_ref("slack", f"progress:{progress_id}")

    async def _save(self, progress_id: str, state: ViewState) -> None:
        key = self._key(progress_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=state.to_hash())  # type: ignore[arg-type]
        if state.pending_seq <= state.seq or state.finished:
            pipe.hdel(key, "pending", "pending_seq")
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()

    @contextlib.asynccontextmanager
    async def _locked(self, progress_id: str, *, wait_s: float) -> AsyncIterator[ViewState | None]:
        """One applier per view: an asyncio lock in this replica, a Redis lease across replicas.

        Yields the view's state, read in the lock's own round trip (None: not locked in time).
        The read is consistent although the pipeline is not atomic: every writer of the state
        holds the lease, so nothing can change it between our SET NX and the HGETALL."""
        local = self._local_locks.setdefault(progress_id, asyncio.Lock())
        async with local:
            lock_key = self._key(progress_id) + ":lock"
            token = uuid.uuid4().hex
            deadline = time.monotonic() + wait_s
            while True:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(lock_key, token, nx=True, px=LOCK_MS)
                pipe.hgetall(self._key(progress_id))
                locked, raw_state = await pipe.execute()
                if locked:
                    break
                if time.monotonic() >= deadline:
                    yield None
                    return
                await asyncio.sleep(0.05)
            async with Lease(self.redis, lock_key, token, LOCK_MS).renewed(every_s=LOCK_RENEW_S):
                yield ViewState.from_hash(raw_state)
        if not local.locked() and progress_id not in self._timers:
            self._local_locks.pop(progress_id, None)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def recipient_key(keys: Keys, channel: str, root: str) -> str:
    """Who a stream in this thread is for (chat.startStream needs it in channels): 'team:user'."""
    return keys.outbound_ref("slack", f"recipient:{channel}:{root}")


def _chunks(chunks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    out = list(chunks)
    if text:
        out.append({"type": "markdown_text", "text": text})
    return out

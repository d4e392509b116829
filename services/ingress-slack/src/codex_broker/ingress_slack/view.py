"""A run's live view on Slack: native streaming, else one progress message updated in place.

Only the platform side: the ingress kit (`libs.ingress_kit.live_view`) orders the snapshots,
paces them, parks the early ones and holds the view's cross-replica lease; it keeps the
`ViewHandle` this module returns between snapshots.

Handle: surface (native|message), channel, thread_ts, ts, control_ts (the Stop button's own
message beside a native stream), stream (what the stream already shows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_slack.api import SlackApi
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
from codex_broker.libs.contracts import ProgressPayload
from codex_broker.libs.ingress_kit.live_view import checkpoint
from codex_broker.libs.ingress_kit.platform import Target, ViewHandle
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

NATIVE = "native"
MESSAGE = "message"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class SlackView:
    """The handle, typed while a call works on it."""

    surface: str = ""
    channel: str = ""
    thread_ts: str = ""
    ts: str = ""
    control_ts: str = ""
    stream: StreamState = field(default_factory=StreamState)

    @classmethod
    def of(cls, handle: ViewHandle | None, target: Target) -> SlackView:
        handle = handle or {}
        return cls(
            surface=str(handle.get("surface") or ""),
            channel=str(handle.get("channel") or target.conversation_id),
            thread_ts=str(handle.get("thread_ts") or target.root_message_id),
            ts=str(handle.get("ts") or ""),
            control_ts=str(handle.get("control_ts") or ""),
            stream=stream_state_from(handle.get("stream") or {}),
        )

    def handle(self) -> ViewHandle:
        return {
            "surface": self.surface,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "ts": self.ts,
            "control_ts": self.control_ts,
            "stream": stream_state_dict(self.stream),
        }


def recipient_key(keys: Keys, channel: str, root: str) -> str:
    """Who a stream in this thread is for (chat.startStream needs it in channels): 'team:user'."""
    return keys.outbound_ref("slack", f"recipient:{channel}:{root}")


def _chunks(chunks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    out = list(chunks)
    if text:
        out.append({"type": "markdown_text", "text": text})
    return out


@dataclass(kw_only=True)
class SlackViews:
    api: SlackApi
    redis: Redis
    keys: Keys
    poster: Poster
    capabilities: Capabilities
    native_enabled: bool = True

    # ---- the kit's three steps -----------------------------------------------------------------

    async def open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        view = SlackView.of(None, target)
        if await self._native_possible(target):
            try:
                await self._native_start(target, snapshot, view)
                return view.handle()
            except SlackCallError as exc:
                if exc.verdict != "refused":
                    raise
                await self.capabilities.refuse(NATIVE_STREAM, f"{exc.method}: {exc.error}")
        await self._message_start(snapshot, view)
        return view.handle()

    async def update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        view = SlackView.of(handle, target)
        if view.surface == NATIVE:
            await self._native_update(snapshot, view)
        elif view.surface == MESSAGE:
            await self._message_update(snapshot, view)
        return view.handle()

    async def finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        """The answer is what the thread waits for: on a progress message it goes out before
        the view's own last update (posting is resumable, so a redelivery does not repeat it)."""
        view = SlackView.of(handle, target)
        if view.surface == MESSAGE:
            if snapshot.final_text:
                await self._post_answer(snapshot, view, snapshot.final_text)
            await self._message_update(snapshot, view)
            return view.handle()
        post_after = snapshot.final_text
        if view.surface == NATIVE:
            post_after = await self._native_finish(snapshot, view)
        if post_after:
            await self._post_answer(snapshot, view, post_after)
        return view.handle()

    # ---- native streaming --------------------------------------------------------------------

    async def _native_possible(self, target: Target) -> bool:
        if not self.native_enabled or not await self.capabilities.allowed(NATIVE_STREAM):
            return False
        return target.conversation_id.startswith("D") or await self._recipient(target) is not None

    async def _recipient(self, target: Target) -> tuple[str, str] | None:
        raw = await self.redis.get(recipient_key(self.keys, target.conversation_id, target.root_message_id))
        if not raw:
            return None
        team, _, user = _text(raw).partition(":")
        return (team, user) if team and user else None

    async def _native_start(self, target: Target, snapshot: ProgressPayload, view: SlackView) -> None:
        delta = stream_delta(snapshot, StreamState())
        first, *rest = text_pieces(delta.markdown_text)
        args: dict[str, Any] = {
            "channel": view.channel,
            "thread_ts": view.thread_ts,
            "task_display_mode": "timeline",
            "chunks": _chunks(delta.chunks, first) or None,
        }
        recipient = await self._recipient(target)
        if recipient is not None:
            args["recipient_team_id"], args["recipient_user_id"] = recipient
        data = await self.api.call("chat.startStream", **args)
        view.surface, view.ts, view.stream = NATIVE, str(data.get("ts") or ""), delta.state
        await checkpoint(view.handle())  # a redelivery must not start a second stream
        for piece in rest:
            await self.api.call(
                "chat.appendStream", channel=view.channel, ts=view.ts, chunks=_chunks([], piece)
            )
        if snapshot.show_stop:
            await self._post_control(snapshot, view)

    async def _post_control(self, snapshot: ProgressPayload, view: SlackView) -> None:
        """Streams cannot carry buttons until they stop: the Stop button is a message of its own."""
        stop = stop_button(snapshot.run_id or snapshot.progress_id)
        try:
            control = await self.api.call(
                "chat.postMessage",
                channel=view.channel,
                thread_ts=view.thread_ts,
                text="Working… (Stop interrupts the run)",
                blocks=[actions_block([stop])],
            )
        except SlackCallError as exc:  # the stream is up; a missing button beats a second stream
            log.warning("could not post the stop button", extra={"error": exc.error})
            return
        view.control_ts = str(control.get("ts") or "")

    async def _native_update(self, snapshot: ProgressPayload, view: SlackView) -> None:
        delta = stream_delta(snapshot, view.stream)
        if delta.empty:
            return
        try:
            for index, piece in enumerate(text_pieces(delta.markdown_text)):
                chunks = _chunks(delta.chunks if index == 0 else [], piece)
                if chunks:
                    await self.api.call("chat.appendStream", channel=view.channel, ts=view.ts, chunks=chunks)
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            await self._degrade(snapshot, view, exc)
            return
        view.stream = delta.state

    async def _degrade(self, snapshot: ProgressPayload, view: SlackView, exc: SlackCallError) -> None:
        """The stream broke mid-run (scope removed, stream expired): continue as a progress message."""
        log.warning("native stream failed; continuing with a progress message", extra={"error": str(exc)})
        if exc.verdict == "refused":
            await self.capabilities.refuse(NATIVE_STREAM, f"{exc.method}: {exc.error}")
        await self._drop_control(view)
        await self._message_start(snapshot, view)

    async def _native_finish(self, snapshot: ProgressPayload, view: SlackView) -> str | None:
        """Stop the stream with the rest of the answer; returns text to post separately, if any."""
        final = snapshot.final_text
        streamed = snapshot.answer_text[: view.stream.streamed_len]
        post_after: str | None = None
        answer = snapshot.answer_text
        if final is not None:
            if final.startswith(streamed):
                answer = final
            else:
                post_after = final
        delta = stream_delta(snapshot, view.stream, answer=answer)
        pieces = text_pieces(delta.markdown_text)
        try:
            for piece in pieces[:-1]:
                await self.api.call(
                    "chat.appendStream", channel=view.channel, ts=view.ts, chunks=_chunks([], piece)
                )
            await self.api.call(
                "chat.stopStream",
                channel=view.channel,
                ts=view.ts,
                chunks=_chunks(delta.chunks, pieces[-1]) or None,
            )
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            log.warning("chat.stopStream failed; posting the answer instead", extra={"error": str(exc)})
            post_after = final if final is not None else snapshot.answer_text[view.stream.streamed_len :]
        view.stream = delta.state
        await self._drop_control(view)
        return post_after

    async def _drop_control(self, view: SlackView) -> None:
        if not view.control_ts:
            return
        try:
            await self.api.call("chat.delete", channel=view.channel, ts=view.control_ts)
        except SlackCallError as exc:
            if not exc.permanent:
                raise
            log.info("could not delete the stop-button message", extra={"error": exc.error})
        view.control_ts = ""

    # ---- fallback: one message updated in place ----------------------------------------------

    async def _message_start(self, snapshot: ProgressPayload, view: SlackView) -> None:
        text = progress_text(snapshot)
        data = await self.api.call(
            "chat.postMessage",
            channel=view.channel,
            thread_ts=view.thread_ts,
            text=text,
            blocks=progress_blocks(snapshot, text),
        )
        view.surface, view.ts = MESSAGE, str(data.get("ts") or "")

    async def _message_update(self, snapshot: ProgressPayload, view: SlackView) -> None:
        if snapshot.phase == "finish" and snapshot.final_text is not None:
            snapshot = snapshot.model_copy(update={"answer_text": ""})  # the answer is its own post
        text = progress_text(snapshot)
        await self.api.call(
            "chat.update", channel=view.channel, ts=view.ts, text=text, blocks=progress_blocks(snapshot, text)
        )

    async def _post_answer(self, snapshot: ProgressPayload, view: SlackView, text: str) -> None:
        await self.poster.post_pieces(
            channel=view.channel,
            thread_ts=view.thread_ts,
            pieces=post_chunks(text, "markdown"),
            parts_id=f"final:{snapshot.progress_id}",
        )

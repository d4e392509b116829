"""A run's live view on Feishu: one card, updated from whole snapshots at a bounded rate.

Surfaces, best first: a CardKit card entity in streaming mode (typewriter answer, activity, Stop
button; element content updates with increasing sequence numbers); an interactive card patched
through im/v1 when CardKit is refused (remembered per app for a day); no live view at all when
cards fail, only the final answer as messages.

Snapshots make this idempotent: the last applied `seq` lives in Redis and older snapshots are
dropped. Updates closer together than the rate allows are coalesced in memory (last one wins);
a `finish` snapshot is never coalesced away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.api import FeishuApi, FeishuError
from codex_broker.ingress_feishu.cards import (
    ACTIVITY_ELEMENT,
    ANSWER_ELEMENT,
    activity_markdown,
    answer_overflow,
    card_answer,
    card_message_content,
    progress_card,
)
from codex_broker.ingress_feishu.surface import message_uuid, post_markdown, send
from codex_broker.libs.contracts import Coordinates, ProgressPayload
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

Surface = Literal["cardkit", "card", "text"]
STATE_TTL_S = 7 * 24 * 3600
CAPABILITY_TTL_S = 24 * 3600


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class _Live:
    """In-process bookkeeping of one card: pacing and the snapshot waiting for its turn."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0
    pending: tuple[ProgressPayload, Coordinates] | None = None
    flusher: asyncio.Task[None] | None = None


class ProgressRenderer:
    def __init__(self, api: FeishuApi, redis: Redis, keys: Keys, *, updates_per_s: float = 5.0) -> None:
        self.api = api
        self.redis = redis
        self.keys = keys
        self.min_interval_s = 1.0 / updates_per_s
        self._live: dict[str, _Live] = {}

    def _state_key(self, progress_id: str) -> str:
        return self.keys.outbound_ref("feishu", f"progress:{progress_id}")

    def _cardkit_capability_key(self) -> str:
        return self.keys.platform_capability("feishu", self.api.app_id, "cardkit")

    async def apply(self, snapshot: ProgressPayload, coords: Coordinates) -> None:
        live = self._live.setdefault(snapshot.progress_id, _Live())
        if snapshot.phase != "finish" and time.monotonic() < live.next_at:
            if live.pending is not None:
                metrics.CARD_UPDATES_COALESCED.inc()
            if live.pending is None or live.pending[0].seq < snapshot.seq:
                live.pending = (snapshot, coords)
            if live.flusher is None or live.flusher.done():
                live.flusher = asyncio.create_task(self._flush_later(snapshot.progress_id, live))
            return
        if snapshot.phase == "finish":
            if live.flusher is not None and live.flusher is not asyncio.current_task():
                live.flusher.cancel()
            live.pending = None
        async with live.lock:
            await self._pace(live)
            await self._apply_now(snapshot, coords, live)
        if snapshot.phase == "finish":
            self._live.pop(snapshot.progress_id, None)

    async def _flush_later(self, progress_id: str, live: _Live) -> None:
        await asyncio.sleep(max(0.0, live.next_at - time.monotonic()))
        pending, live.pending = live.pending, None
        if pending is None:
            return
        try:
            async with live.lock:
                await self._apply_now(pending[0], pending[1], live)
        except Exception:
            # an intermediate snapshot: the next one (or finish) carries everything again
            log.warning("coalesced progress update failed", exc_info=True, extra={"progress_id": progress_id})

    async def _pace(self, live: _Live) -> None:
        delay = live.next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _apply_now(self, snapshot: ProgressPayload, coords: Coordinates, live: _Live) -> None:
        key = self._state_key(snapshot.progress_id)
        state = {_s(k): _s(v) for k, v in (await self.redis.hgetall(key)).items()}
        if state.get("finished") == "1":
            if state.get("posts") == "pending" and state.get("seq") == str(snapshot.seq):
                await self._post_answer(snapshot, coords, state, key)  # a redelivery after a failed post
            return
        if int(state.get("seq", "-1")) >= snapshot.seq:
            return
        calls = 0
        if not state.get("surface"):
            state, calls = await self._open(snapshot, coords)
        elif snapshot.phase != "finish":
            calls = await self._update(snapshot, coords, state)
        if snapshot.phase == "finish":
            calls += await self._finish(snapshot, coords, state)
            state["finished"] = "1"
            state["posts"] = "pending" if snapshot.final_text is not None else "done"
        state["seq"] = str(snapshot.seq)
        await self._save(key, state)
        live.next_at = time.monotonic() + max(calls, 1) * self.min_interval_s
        if state.get("posts") == "pending":
            await self._post_answer(snapshot, coords, state, key)

    async def _save(self, key: str, state: dict[str, str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=dict(state))  # type: ignore[arg-type]
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()

    async def _post_answer(
        self, snapshot: ProgressPayload, coords: Coordinates, state: dict[str, str], key: str
    ) -> None:
        """The part of the final answer that is not in the card, as messages (uuid-idempotent)."""
        final = snapshot.final_text or ""
        parts = answer_overflow(final) if state.get("final_surface") == "cardkit" else [final]
        for index, part in enumerate(parts):
            await post_markdown(self.api, coords, part, uuid_base=f"final:{snapshot.progress_id}:{index}")
        await self.redis.hset(key, "posts", "done")

    # ---- open ---------------------------------------------------------------------------------

    async def _open(self, snapshot: ProgressPayload, coords: Coordinates) -> tuple[dict[str, str], int]:
        answer = card_answer(snapshot.answer_text)
        uuid = message_uuid(f"progress:{snapshot.progress_id}")
        if await self.redis.get(self._cardkit_capability_key()) != b"no":
            try:
                card_id = await self.api.create_card(
                    progress_card(
                        snapshot, coords, answer=answer, streaming=True, show_stop=snapshot.show_stop
                    )
                )
                message_id = await send(
                    self.api, coords, "interactive", card_message_content(card_id), uuid=uuid
                )
                metrics.CARD_UPDATES.labels(surface="cardkit").inc()
                return self._fresh("cardkit", snapshot, answer, card_id=card_id, message_id=message_id), 2
            except FeishuError as exc:
                if not exc.permanent:
                    raise
                log.warning("CardKit refused; falling back to a patched card", extra={"error": str(exc)})
                await self.redis.set(self._cardkit_capability_key(), "no", ex=CAPABILITY_TTL_S)
        try:
            card = progress_card(
                snapshot, coords, answer=answer, streaming=False, show_stop=snapshot.show_stop
            )
            message_id = await send(self.api, coords, "interactive", card, uuid=message_uuid(uuid, 1))
            metrics.CARD_UPDATES.labels(surface="card").inc()
            return self._fresh("card", snapshot, answer, message_id=message_id), 1
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.warning("cards refused; the run shows only its final answer", extra={"error": str(exc)})
            return self._fresh("text", snapshot, answer), 0

    @staticmethod
    def _fresh(
        surface: Surface, snapshot: ProgressPayload, answer: str, *, card_id: str = "", message_id: str = ""
    ) -> dict[str, str]:
        return {
            "surface": surface,
            "card_id": card_id,
            "message_id": message_id,
            "cseq": "1",
            "answer": _digest(answer),
            "activity": _digest(activity_markdown(snapshot)),
            "stop": "1" if snapshot.show_stop else "0",
        }

    # ---- update -------------------------------------------------------------------------------

    async def _update(self, snapshot: ProgressPayload, coords: Coordinates, state: dict[str, str]) -> int:
        answer = card_answer(snapshot.answer_text)
        activity = activity_markdown(snapshot)
        stop = "1" if snapshot.show_stop else "0"
        changed_answer = _digest(answer) != state.get("answer")
        changed_activity = _digest(activity) != state.get("activity")
        if not (changed_answer or changed_activity or stop != state.get("stop")):
            return 0
        surface = state.get("surface")
        try:
            if surface == "cardkit" and stop == state.get("stop"):
                calls = 0
                for element, content, changed in (
                    (ANSWER_ELEMENT, answer, changed_answer),
                    (ACTIVITY_ELEMENT, activity, changed_activity),
                ):
                    if changed:
                        await self.api.set_element_content(
                            state["card_id"], element, content, self._next_seq(state)
                        )
                        calls += 1
            elif surface == "cardkit":
                card = progress_card(
                    snapshot, coords, answer=answer, streaming=True, show_stop=snapshot.show_stop
                )
                await self.api.update_card(state["card_id"], card, self._next_seq(state))
                calls = 1
            elif surface == "card":
                card = progress_card(
                    snapshot, coords, answer=answer, streaming=False, show_stop=snapshot.show_stop
                )
                await self.api.patch_card_message(state["message_id"], card)
                calls = 1
            else:
                return 0
        except FeishuError as exc:
            if not exc.permanent:
                raise
            # a refused intermediate update is not worth a dead letter: the next snapshot retries
            log.warning("progress update refused", extra={"error": str(exc), "surface": surface})
            return 1
        metrics.CARD_UPDATES.labels(surface=surface or "text").inc(calls)
        state.update(answer=_digest(answer), activity=_digest(activity), stop=stop)
        return calls

    @staticmethod
    def _next_seq(state: dict[str, str]) -> int:
        # CardKit wants a strictly increasing sequence per card; kept with the card's state
        value = int(state.get("cseq", "0")) + 1
        state["cseq"] = str(value)
        return value

    # ---- finish -------------------------------------------------------------------------------

    async def _finish(self, snapshot: ProgressPayload, coords: Coordinates, state: dict[str, str]) -> int:
        """Finalize the card (no Stop button, streaming off); records where the answer ended up."""
        surface = state.get("surface")
        final = snapshot.final_text
        calls = 0
        try:
            if surface == "cardkit":
                answer = card_answer(final if final is not None else snapshot.answer_text)
                card = progress_card(snapshot, coords, answer=answer, streaming=False, show_stop=False)
                await self.api.set_card_settings(
                    state["card_id"], {"config": {"streaming_mode": False}}, self._next_seq(state)
                )
                await self.api.update_card(state["card_id"], card, self._next_seq(state))
                calls = 2
            elif surface == "card":
                # the answer follows as messages; the card keeps the outcome (and the streamed
                # text only when the answer was already posted elsewhere)
                answer = card_answer(snapshot.answer_text) if final is None else ""
                card = progress_card(snapshot, coords, answer=answer, streaming=False, show_stop=False)
                await self.api.patch_card_message(state["message_id"], card)
                calls = 1
            metrics.CARD_UPDATES.labels(surface=surface or "text").inc(calls)
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.warning(
                "finalizing the run card failed; posting the answer as messages", extra={"error": str(exc)}
            )
            surface = "text"
        state["final_surface"] = surface or "text"
        return calls


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def cancel_all(renderer: ProgressRenderer) -> None:
    for live in list(renderer._live.values()):
        if live.flusher is not None:
            live.flusher.cancel()
            with contextlib.suppress(BaseException):
                await live.flusher

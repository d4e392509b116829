"""A run's live view on Feishu: one card, redrawn from whole snapshots.

Only the platform side: the ingress kit (`libs.ingress_kit.live_view`) orders the snapshots,
paces them, parks the early ones and holds the view's cross-replica lease; it keeps the
`ViewHandle` this module returns between snapshots.

Surfaces, best first: a CardKit card entity in streaming mode (typewriter answer, activity, Stop
button; element content updates with increasing sequence numbers); an interactive card patched
through im/v1 when CardKit is refused (remembered per app for a day); no live view at all when
cards fail, only the final answer as messages.

Handle: surface (cardkit|card|text), card_id, message_id, cseq (CardKit's sequence), digests of
the answer and activity shown, stop (the button is shown), final_surface (set once the card is
finalized: a redelivered finish then only posts the answer).
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.api import FeishuApi, FeishuError
from codex_broker.ingress_feishu.render import (
    ACTIVITY_ELEMENT,
    ANSWER_ELEMENT,
    activity_markdown,
    answer_overflow,
    card_answer,
    card_message_content,
    progress_card,
)
from codex_broker.ingress_feishu.surface import coordinates, message_uuid, post_markdown, send
from codex_broker.libs.contracts import ProgressPayload
from codex_broker.libs.ingress_kit.live_view import checkpoint
from codex_broker.libs.ingress_kit.platform import Target, ViewHandle
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

CAPABILITY_TTL_S = 24 * 3600


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _next_seq(handle: ViewHandle) -> int:
    # CardKit wants a strictly increasing sequence per card; kept in the view's handle
    value = int(handle.get("cseq", 0)) + 1
    handle["cseq"] = value
    return value


class FeishuViews:
    def __init__(self, api: FeishuApi, redis: Redis, keys: Keys) -> None:
        self.api = api
        self.redis = redis
        self.keys = keys

    def _cardkit_capability_key(self) -> str:
        return self.keys.platform_capability("feishu", self.api.app_id, "cardkit")

    # ---- open ---------------------------------------------------------------------------------

    async def open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        coords = coordinates(target)
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
                return self._fresh("cardkit", snapshot, answer, card_id=card_id, message_id=message_id)
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
            return self._fresh("card", snapshot, answer, message_id=message_id)
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.warning("cards refused; the run shows only its final answer", extra={"error": str(exc)})
            return self._fresh("text", snapshot, answer)

    @staticmethod
    def _fresh(
        surface: str, snapshot: ProgressPayload, answer: str, *, card_id: str = "", message_id: str = ""
    ) -> ViewHandle:
        return {
            "surface": surface,
            "card_id": card_id,
            "message_id": message_id,
            "cseq": 1,
            "answer": _digest(answer),
            "activity": _digest(activity_markdown(snapshot)),
            "stop": snapshot.show_stop,
        }

    # ---- update -------------------------------------------------------------------------------

    async def update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        handle = dict(handle)
        coords = coordinates(target)
        answer = card_answer(snapshot.answer_text)
        activity = activity_markdown(snapshot)
        changed_answer = _digest(answer) != handle.get("answer")
        changed_activity = _digest(activity) != handle.get("activity")
        same_stop = snapshot.show_stop == handle.get("stop")
        if not (changed_answer or changed_activity or not same_stop):
            return handle
        surface = handle.get("surface")
        try:
            if surface == "cardkit" and same_stop:
                calls = 0
                for element, content, changed in (
                    (ANSWER_ELEMENT, answer, changed_answer),
                    (ACTIVITY_ELEMENT, activity, changed_activity),
                ):
                    if changed:
                        await self.api.set_element_content(
                            handle["card_id"], element, content, _next_seq(handle)
                        )
                        calls += 1
            elif surface == "cardkit":
                card = progress_card(
                    snapshot, coords, answer=answer, streaming=True, show_stop=snapshot.show_stop
                )
                await self.api.update_card(handle["card_id"], card, _next_seq(handle))
                calls = 1
            elif surface == "card":
                card = progress_card(
                    snapshot, coords, answer=answer, streaming=False, show_stop=snapshot.show_stop
                )
                await self.api.patch_card_message(handle["message_id"], card)
                calls = 1
            else:
                return handle
        except FeishuError as exc:
            if not exc.permanent:
                raise
            # a refused intermediate update is not worth a dead letter: the next snapshot retries
            log.warning("progress update refused", extra={"error": str(exc), "surface": surface})
            return handle
        metrics.CARD_UPDATES.labels(surface=surface or "text").inc(calls)
        handle.update(answer=_digest(answer), activity=_digest(activity), stop=snapshot.show_stop)
        return handle

    # ---- finish -------------------------------------------------------------------------------

    async def finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        handle = dict(handle or {"surface": "text"})
        if "final_surface" not in handle:
            handle["final_surface"] = await self._finalize(target, handle, snapshot)
            await checkpoint(handle)  # a redelivery after a failed post only posts
        if snapshot.final_text is not None:
            await self._post_answer(target, handle, snapshot)
        return handle

    async def _finalize(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> str:
        """Finalize the card (no Stop button, streaming off); returns where the answer ended up."""
        coords = coordinates(target)
        surface = handle.get("surface")
        final = snapshot.final_text
        calls = 0
        try:
            if surface == "cardkit":
                answer = card_answer(final if final is not None else snapshot.answer_text)
                card = progress_card(snapshot, coords, answer=answer, streaming=False, show_stop=False)
                await self.api.set_card_settings(
                    handle["card_id"], {"config": {"streaming_mode": False}}, _next_seq(handle)
                )
                await self.api.update_card(handle["card_id"], card, _next_seq(handle))
                calls = 2
            elif surface == "card":
                # the answer follows as messages; the card keeps the outcome (and the streamed
                # text only when the answer was already posted elsewhere)
                answer = card_answer(snapshot.answer_text) if final is None else ""
                card = progress_card(snapshot, coords, answer=answer, streaming=False, show_stop=False)
                await self.api.patch_card_message(handle["message_id"], card)
                calls = 1
            metrics.CARD_UPDATES.labels(surface=surface or "text").inc(calls)
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.warning(
                "finalizing the run card failed; posting the answer as messages", extra={"error": str(exc)}
            )
            surface = "text"
        return str(surface or "text")

    async def _post_answer(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> None:
        """The part of the final answer that is not in the card, as messages (uuid-idempotent)."""
        final = snapshot.final_text or ""
        parts = answer_overflow(final) if handle.get("final_surface") == "cardkit" else [final]
        coords = coordinates(target)
        for index, part in enumerate(parts):
            await post_markdown(self.api, coords, part, uuid_base=f"final:{snapshot.progress_id}:{index}")

"""Asking unresolved participants, at most once per person and session every 5 minutes.

The cooldown is a Redis key with a TTL (`keys.coauthor_prompt_cooldown`), set with NX before
publishing: two commits at once send one prompt. If publishing fails the key is removed so the
next commit asks again.
"""

from __future__ import annotations

import hashlib
import time

from codex_broker.http_api.coauthors import metrics
from codex_broker.http_api.context import AppContext
from codex_broker.libs import coauthor_views as views
from codex_broker.libs.authors import PROMPT_COOLDOWN_S, Participant
from codex_broker.libs.contracts import (
    Coordinates,
    EphemeralPayload,
    OutboundAction,
    OutboundPayload,
    PostPayload,
)

MAX_PROMPTS_PER_CALL = 10


def prompt_action(coords: Coordinates, person: Participant, *, now_ms: int) -> OutboundAction:
    """Slack: an ephemeral message to that person; Feishu: a card in the thread mentioning them."""
    text = views.prompt_text(person.display_name, platform=coords.platform)
    button = views.prompt_button(person.user_id)
    payload: OutboundPayload
    if coords.platform == "slack":
        payload = EphemeralPayload(user_id=person.user_id, text=text, buttons=[button])
    else:
        payload = PostPayload(text=f"{views.feishu_mention(person.user_id)} {text}", buttons=[button])
    digest = hashlib.sha256(f"{coords.session_key}\n{person.user_id}".encode()).hexdigest()[:24]
    return OutboundAction(
        action_id=f"coauthor-prompt:{digest}:{now_ms // 1000}",
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=coords.root_message_id,
        session_key=coords.session_key,
        payload=payload,
    )


async def prompt_unresolved(ctx: AppContext, coords: Coordinates, people: list[Participant]) -> list[str]:
    """Prompt those not asked within the cooldown; the user ids prompted now."""
    prompted = []
    now_ms = int(time.time() * 1000)
    for person in people[:MAX_PROMPTS_PER_CALL]:
        key = ctx.keys.coauthor_prompt_cooldown(coords.session_key, person.user_id)
        if not await ctx.redis.set(key, str(now_ms), nx=True, ex=PROMPT_COOLDOWN_S):
            continue
        try:
            await ctx.bus.publish(
                ctx.keys.outbound_stream(coords.platform), prompt_action(coords, person, now_ms=now_ms)
            )
        except BaseException:
            await ctx.redis.delete(key)
            raise
        metrics.PROMPTS.labels(platform=coords.platform).inc()
        prompted.append(person.user_id)
    return prompted

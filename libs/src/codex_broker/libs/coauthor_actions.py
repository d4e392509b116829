"""The orchestrator's side of the co-author buttons: open the form, store the answer.

`handle_coauthor_action(redis, keys, bus, event)` takes an InboundEvent of kind `action` with
action `coauthor_open` (the "Configure co-authors" button) or `coauthor_submit` (the form's
submission) and publishes what follows on the platform's outbound stream. Action ids are
derived from the event id, so a redelivered event never opens or confirms twice.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from codex_broker.libs import coauthor_views as views
from codex_broker.libs.authors import authors_for, load_resolution, store_coauthor_submission
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.contracts import (
    EphemeralPayload,
    InboundEvent,
    OpenViewPayload,
    OutboundAction,
    OutboundPayload,
)
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

# platforms whose forms open only for a click's short-lived trigger id (Slack's views.open)
TRIGGERED_FORMS = frozenset({"slack"})


def _outbound(event: InboundEvent, payload: OutboundPayload, action_id: str) -> OutboundAction:
    return OutboundAction(
        action_id=action_id[:256],
        platform=event.platform,
        conversation_id=event.conversation_id,
        root_message_id=event.root_message_id,
        session_key=event.session_key,
        payload=payload,
    )


async def coauthor_open_action(redis: Redis, keys: Keys, event: InboundEvent) -> OutboundAction:
    """The co-author form for this thread, platform-neutral: the ingress renders it (a Slack
    modal, which needs the click's trigger_id; a Feishu form card in the thread)."""
    resolution = await load_resolution(redis, keys, event.platform, event.session_key)
    own = (await authors_for(redis, keys, event.platform, [event.actor.id])).get(event.actor.id)
    action_id = f"coauthor-open:{event.event_id}"
    trigger = (event.action.trigger_id if event.action else None) or ""
    if event.platform in TRIGGERED_FORMS and not trigger:
        text = "That button has expired; press it again to configure co-authors."
        return _outbound(event, EphemeralPayload(user_id=event.actor.id, text=text), action_id)
    form = views.coauthor_form(resolution, own)
    return _outbound(event, OpenViewPayload(trigger_id=trigger, form=form), action_id)


async def coauthor_submit_action(redis: Redis, keys: Keys, event: InboundEvent) -> OutboundAction:
    """Store the answer; the confirmation (or the reason nothing was stored) for the submitter."""
    values = event.action.values if event.action else {}
    submission = await store_coauthor_submission(
        redis, keys, event.platform, event.session_key, event.actor, values
    )
    if submission.error == "invalid_email":
        text = "Nothing saved: the GitHub email does not look like an email address."
    else:
        resolution = await load_resolution(redis, keys, event.platform, event.session_key)
        text = views.confirmation_text(resolution)
    payload = EphemeralPayload(user_id=event.actor.id, text=text)
    return _outbound(event, payload, f"coauthor-saved:{event.event_id}")


async def handle_coauthor_action(redis: Redis, keys: Keys, bus: StreamBus, event: InboundEvent) -> bool:
    """Handle a co-author button or submission; False when the event is not one of them."""
    if event.kind != "action" or event.action is None:
        return False
    if event.action.action == "coauthor_open":
        outbound = await coauthor_open_action(redis, keys, event)
    elif event.action.action == "coauthor_submit":
        outbound = await coauthor_submit_action(redis, keys, event)
    else:
        return False
    await bus.publish(keys.outbound_stream(event.platform), outbound)
    log.info(
        "co-author action handled",
        extra={"action": event.action.action, "platform": event.platform, "outbound": outbound.kind},
    )
    return True

"""The gateway side: discord.py's websocket client, and each event it receives stored before
anything else happens (persist before ack).

Events are taken raw (`on_socket_raw_receive`), normalized by the pure `normalize` module and
stored through the kit's `InboundStore` in the order they arrived (one queue, one consumer).
Discord never re-sends a gateway event, so the ack that other platforms have does not exist for
messages: what makes them durable is the backfill. Each session channel remembers the id of its
last stored message; on every READY (a new gateway session: whatever happened while we were away
was not delivered) and RESUMED, the channels active in the last DISCORD_BACKFILL_DAYS are read
from REST history after that id, and each message goes through the same path (the event id
dedupes what did arrive); live messages that arrive meanwhile wait in the queue until the
backfill is done, so a thread's messages are stored oldest first. An interaction is acked (its
callback) only after it is stored; one that could not be stored is not acked, so Discord tells
the user it failed and they can retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import discord

from codex_broker.ingress_discord import metrics
from codex_broker.ingress_discord.adapter import CHANNEL_TTL_S, DiscordPlatform
from codex_broker.ingress_discord.normalize import (
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    Access,
    Place,
    access_denial,
    admin_only_refused,
    command_definition,
    command_event,
    component_event,
    ignore_reason,
    interaction_coords,
    message_event,
    place_of,
    thread_name,
    with_role_admin,
)
from codex_broker.ingress_discord.rest import Rest
from codex_broker.libs.contracts import InboundEvent
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.inbound import InboundStore, StillInProgress
from codex_broker.libs.ingress_kit.platform import PlatformError
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

LAST_TTL_S = 30 * 86400
INTERACTION_TOKEN_TTL_S = 14 * 60  # Discord's interaction tokens live 15 minutes
DEFERRED_UPDATE = 6
DEFERRED_MESSAGE = 5
EPHEMERAL = 64
PERSIST_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
BACKFILL_PAGE = 100
BACKFILL_MAX_CHANNELS = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def intents() -> discord.Intents:
    """Guild and DM messages with their content (a privileged intent to enable for the app)."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.guild_messages = True
    chosen.dm_messages = True
    chosen.message_content = True
    return chosen


class GatewayClient(discord.Client):
    """discord.py's client, used for its gateway connection (heartbeats, resume, reconnects) and
    its rate-limited HTTP client; the raw events go to `Inbound`."""

    def __init__(self) -> None:
        super().__init__(intents=intents(), enable_debug_events=True, max_messages=None)
        self.inbound: Inbound | None = None

    async def on_socket_raw_receive(self, msg: str) -> None:
        if self.inbound is not None:
            self.inbound.feed(msg)

    async def on_disconnect(self) -> None:
        metrics.CONNECTED.set(0)
        if self.inbound is not None:
            self.inbound.connected = False


class Inbound:
    def __init__(
        self,
        store: InboundStore,
        dead_letters: DeadLetterWriter,
        platform: DiscordPlatform,
        rest: Rest,
        keys: Keys,
        access: Access,
        *,
        backfill_days: int,
        register_commands: bool,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.platform = platform
        self.rest = rest
        self.redis = store.redis
        self.keys = keys
        self.access = access
        self.backfill_days = backfill_days
        self.register_commands = register_commands
        self.bot_id = ""
        self.application_id = ""
        self.connected = False
        self.client: discord.Client | None = None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._commands_registered = False
        # cleared while a backfill runs: live messages wait in the queue behind the gap's older ones
        self._caught_up = asyncio.Event()
        self._caught_up.set()

    # ---- gateway frames ------------------------------------------------------------------------

    def feed(self, raw: str) -> None:
        """Called for every gateway frame, in order; must not block."""
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if frame.get("op") != 0:
            return
        kind, data = frame.get("t"), frame.get("d") or {}
        if kind == "READY":
            self.bot_id = str((data.get("user") or {}).get("id", ""))
            self.application_id = str((data.get("application") or {}).get("id", "")) or self.bot_id
            self._connected()
        elif kind == "RESUMED":
            self._connected()
        elif kind == "MESSAGE_CREATE":
            self.queue.put_nowait(data)
        elif kind == "INTERACTION_CREATE":
            self._spawn(self.handle_interaction(data))

    def _connected(self) -> None:
        self.connected = True
        metrics.CONNECTED.set(1)
        self._caught_up.clear()
        self._spawn(self._after_connect())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        """The one consumer of gateway messages: stored in arrival order."""
        while not stop.is_set():
            getter = asyncio.ensure_future(self.queue.get())
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([getter, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if getter not in done:
                getter.cancel()
                break
            await self._caught_up.wait()
            await self.handle_message(getter.result(), source="gateway")
        for task in list(self._tasks):
            task.cancel()

    async def _after_connect(self) -> None:
        try:
            await self._register_and_backfill()
        finally:
            self._caught_up.set()

    async def _register_and_backfill(self) -> None:
        if self.register_commands and not self._commands_registered and self.application_id:
            try:
                await self.rest.register_commands(self.application_id, [command_definition()])
                self._commands_registered = True
            except PlatformError as exc:
                log.warning("could not register the /codex command", extra={"error": str(exc)})
        await self.backfill()

    # ---- messages ------------------------------------------------------------------------------

    async def _meta(self, channel: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.discord_channel(channel))
        return json.loads(_text(raw)) if raw else None

    def _foreign_thread_parent(self, channel: str) -> str | None:
        found = self.client.get_channel(int(channel)) if self.client and channel.isdigit() else None
        if isinstance(found, discord.Thread) and found.parent_id:
            return str(found.parent_id)
        return None

    async def handle_message(self, message: Mapping[str, Any], *, source: str) -> None:
        reason = ignore_reason(message, self.bot_id)
        if reason is not None:
            metrics.INBOUND.labels(kind="message", result="ignored").inc()
            if reason == "malformed":
                await self.dead_letters.write(
                    dict(message), "malformed message", source_id=str(message.get("id", ""))
                )
            return
        channel = str(message["channel_id"])
        meta = await self._meta(channel)
        place = place_of(
            message,
            bot_id=self.bot_id,
            our_thread=meta,
            thread_parent=None if meta else self._foreign_thread_parent(channel),
            homes=self.access.homes,
        )
        if place is None:
            metrics.INBOUND.labels(kind="message", result="ignored").inc()
            return
        denial = access_denial(message, self.access, place.parent_channel)
        event = with_role_admin(message_event(message, place, self.bot_id), message, self.access)
        if denial is not None or admin_only_refused(event.text, message, self.access):
            log.info("discord message refused", extra={"channel": channel, "reason": denial or "admin"})
            metrics.INBOUND.labels(kind="message", result="denied").inc()
            return
        also = {self.keys.discord_last(place.session_channel): (str(message["id"]), LAST_TTL_S)}
        if meta is None:
            new_meta = {
                "parent": place.parent_channel,
                "guild": str(message.get("guild_id") or ""),
                "opens_thread": place.opens_thread,
                "name": thread_name(event.text, event.actor.display_name) if place.opens_thread else "",
                "home_channel": place.session_channel in self.access.homes,
            }
            also[self.keys.discord_channel(place.session_channel)] = (json.dumps(new_meta), CHANNEL_TTL_S)
        if not await self._persist(event, also, kind="message"):
            return
        if source == "backfill":
            metrics.BACKFILLED.inc()
        await self.redis.zadd(self.keys.discord_active, {place.session_channel: int(time.time() * 1000)})
        if place.opens_thread:
            await self._open_thread(place)

    async def _open_thread(self, place: Place) -> None:
        try:
            await self.platform.ensure_thread(place.session_channel)
        except PlatformError as exc:  # the first post tries again
            log.warning(
                "could not open the task thread yet",
                extra={"thread": place.session_channel, "error": str(exc)},
            )

    async def _persist(self, event: InboundEvent, also: Mapping[str, tuple[str, int]], *, kind: str) -> bool:
        """True when stored now; retried while Redis is unreachable (the queue waits meanwhile)."""
        for delay in (*PERSIST_RETRY_S, None):
            try:
                stored = await self.store.persist(event, also_set=also)
            except StillInProgress:
                stored = False
            except Exception as exc:
                if delay is None:
                    log.error(
                        "could not store a discord event", extra={"event": event.event_id, "error": str(exc)}
                    )
                    metrics.INBOUND.labels(kind=kind, result="failed").inc()
                    raise
                await asyncio.sleep(delay)
                continue
            metrics.INBOUND.labels(kind=kind, result="persisted" if stored else "duplicate").inc()
            return stored
        return False

    # ---- backfill ------------------------------------------------------------------------------

    async def backfill(self) -> None:
        """Messages of active session channels after the last one stored (missed while away)."""
        if not self.backfill_days:
            return
        since = int((time.time() - self.backfill_days * 86400) * 1000)
        channels = await self.redis.zrangebyscore(
            self.keys.discord_active, since, "+inf", start=0, num=BACKFILL_MAX_CHANNELS
        )
        for raw in channels:
            channel = _text(raw)
            try:
                await self._backfill_channel(channel)
            except PlatformError as exc:
                log.warning("backfill of a channel failed", extra={"channel": channel, "error": str(exc)})

    async def _backfill_channel(self, channel: str) -> None:
        meta = await self._meta(channel) or {}
        last = await self.redis.get(self.keys.discord_last(channel))
        after = _text(last) if last else None
        while after is not None:
            page = await self.rest.history(channel, limit=BACKFILL_PAGE, after=after)
            page.sort(key=lambda m: int(m["id"]))
            for message in page:
                if meta.get("guild"):
                    message = {**message, "guild_id": meta["guild"]}  # REST messages do not carry it
                await self.handle_message(message, source="backfill")
            after = str(page[-1]["id"]) if len(page) == BACKFILL_PAGE else None

    # ---- interactions ----------------------------------------------------------------------------

    async def handle_interaction(self, interaction: Mapping[str, Any]) -> None:
        kind = interaction.get("type")
        channel = str(interaction.get("channel_id") or "")
        meta = await self._meta(channel) if channel else None
        coords = interaction_coords(channel, meta, self.access.homes)
        if kind == INTERACTION_COMPONENT:
            event = component_event(interaction, coords)
            label = "component"
        elif kind == INTERACTION_COMMAND:
            event = command_event(interaction, coords=coords)
            label = "command"
        else:
            return
        if event is None:
            metrics.INBOUND.labels(kind="interaction", result="ignored").inc()
            return
        event = with_role_admin(event, interaction, self.access)
        parent = (meta or {}).get("parent") or self._foreign_thread_parent(channel) or channel
        if access_denial(interaction, self.access, parent) is not None:
            metrics.INBOUND.labels(kind=label, result="denied").inc()
            await self._answer(interaction, "You cannot use Codex here.")
            return
        also: dict[str, tuple[str, int]] = {}
        if event.reply_ephemeral:
            token = {
                "application_id": str(interaction.get("application_id") or self.application_id),
                "token": str(interaction["token"]),
            }
            also[self.keys.discord_interaction(channel, event.actor.id)] = (
                json.dumps(token),
                INTERACTION_TOKEN_TTL_S,
            )
        try:
            await self._persist(event, also, kind=label)
        except Exception:
            return  # not acked: Discord shows the user that the interaction failed
        body: dict[str, Any] = (
            {"type": DEFERRED_MESSAGE, "data": {"flags": EPHEMERAL}}
            if event.reply_ephemeral
            else {"type": DEFERRED_UPDATE}
        )
        try:
            await self.rest.interaction_callback(str(interaction["id"]), str(interaction["token"]), body)
        except PlatformError as exc:
            log.warning("interaction not acked", extra={"error": str(exc)})
            return
        if event.reply_ephemeral:  # a follow-up may be sent now (Discord refuses one before the ack)
            key, (value, ttl) = next(iter(also.items()))
            await self.redis.set(key, json.dumps({**json.loads(value), "acked": True}), ex=ttl)

    async def _answer(self, interaction: Mapping[str, Any], text: str) -> None:
        body = {"type": 4, "data": {"content": text, "flags": EPHEMERAL}}
        with contextlib.suppress(PlatformError):
            await self.rest.interaction_callback(str(interaction["id"]), str(interaction["token"]), body)

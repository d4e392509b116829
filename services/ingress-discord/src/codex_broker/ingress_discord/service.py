"""Wiring: discord.py's client (gateway + HTTP), the inbound side, and the kit's executor on
`outbound:discord`.

discord.py reads its endpoints from two class attributes, `discord.http.Route.BASE` (REST) and
`DiscordWebSocket.DEFAULT_GATEWAY` (the gateway it connects to, and returns to after an
invalidated session); DISCORD_API_BASE_URL and DISCORD_GATEWAY_URL set them once per process
(tests point them at the fake Discord on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlparse

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
from redis.asyncio import Redis

from codex_broker.ingress_discord.adapter import DiscordPlatform
from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.files import CDN_HOSTS
from codex_broker.ingress_discord.gateway import GatewayClient, Inbound
from codex_broker.ingress_discord.normalize import Access
from codex_broker.ingress_discord.rest import Rest
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.inbound import InboundStore
from codex_broker.libs.ingress_kit.live_view import LiveViews
from codex_broker.libs.ingress_kit.outbound import OutboundExecutor, outbound_consumer

log = logging.getLogger(__name__)


def point_discord_py_at(api_base_url: str, gateway_url: str) -> None:
    Route.BASE = api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def access_of(settings: Settings) -> Access:
    return Access(
        guilds=frozenset(settings.discord_allowed_guilds),
        channels=frozenset(settings.discord_allowed_channels),
        roles=frozenset(settings.discord_allowed_roles),
        admin_roles=frozenset(settings.discord_admin_roles),
        dms_allowed=settings.discord_dms_allowed,
        homes=settings.home_channels,
    )


class DiscordService:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        point_discord_py_at(settings.discord_api_base_url, settings.discord_gateway_url)
        self.bus = StreamBus(
            redis, dead_letter_stream=self.keys.dead_letter_stream, maxlen=settings.stream_maxlen
        )
        api_host = urlparse(settings.discord_api_base_url).netloc.lower()
        self.inbound: Inbound | None = None
        self.client: GatewayClient | None = None
        self.platform: DiscordPlatform | None = None
        self._login: asyncio.Future[None] | None = None
        self._hosts = frozenset({*CDN_HOSTS, api_host})
        self.state = "starting"

    async def _logged_in(self) -> tuple[GatewayClient, DiscordPlatform, Inbound]:
        """One login (GET /users/@me and discord.py's HTTP session) shared by both tasks."""
        if self._login is None:
            self._login = asyncio.get_running_loop().create_future()
            try:
                self._build()
                assert self.client is not None
                await self.client.login(self.settings.discord_bot_token.get_secret_value())
            except BaseException as exc:
                self._login.set_exception(exc)
                raise
            self._login.set_result(None)
        await asyncio.shield(self._login)
        assert self.client and self.platform and self.inbound
        return self.client, self.platform, self.inbound

    def _build(self) -> None:
        settings = self.settings
        client = GatewayClient()
        rest = Rest(client.http)  # the client's own HTTP client: one session, one set of buckets
        platform = DiscordPlatform(
            rest,
            self.redis,
            self.keys,
            data_root=settings.data_root,
            max_upload_bytes=settings.discord_max_upload_bytes,
            download_max_bytes=settings.discord_download_max_bytes,
            download_hosts=self._hosts,
            archive_minutes=settings.discord_thread_archive_minutes,
        )
        inbound = Inbound(
            InboundStore(self.redis, self.keys, platform="discord", maxlen=settings.stream_maxlen),
            DeadLetterWriter(self.redis, self.keys, source="discord:gateway", group="ingress-discord"),
            platform,
            rest,
            self.keys,
            access_of(settings),
            backfill_days=settings.discord_backfill_days,
            register_commands=settings.discord_register_commands,
        )
        client.inbound, inbound.client = inbound, client
        self.client, self.platform, self.inbound = client, platform, inbound

    async def run_gateway(self, stop: asyncio.Event) -> None:
        client, _, inbound = await self._logged_in()
        consume = asyncio.create_task(inbound.run(stop))
        connect = asyncio.create_task(client.connect(reconnect=True))
        stopped = asyncio.create_task(stop.wait())
        self.state = "ok"
        try:
            done, _ = await asyncio.wait([consume, connect, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (consume, connect):
                if task in done and task.exception() is not None:
                    raise RuntimeError(f"the discord gateway stopped: {task.exception()!r}")
        finally:
            stopped.cancel()
            await client.close()
            for task in (consume, connect):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def run_outbound(self, stop: asyncio.Event) -> None:
        _, platform, _ = await self._logged_in()
        views = LiveViews(
            platform, self.redis, self.keys, interval_s=self.settings.discord_progress_interval_s
        )
        executor = OutboundExecutor(platform, self.redis, self.keys, views)
        consumer = outbound_consumer(
            executor,
            self.bus,
            consumer=self.settings.instance_id,
            concurrency=self.settings.outbound_concurrency,
            block_ms=self.settings.outbound_block_ms,
            max_deliveries=self.settings.max_deliveries,
            claim_idle_ms=self.settings.claim_idle_ms,
        )
        try:
            await consumer.run(stop)
        finally:
            await views.close()

    async def ready(self) -> dict[str, Any]:
        connected = self.inbound is not None and self.inbound.connected
        return {"discord": "ok" if connected else "connecting"}

    def details(self) -> dict[str, Any]:
        inbound = self.inbound
        return {
            "discord": "ok" if inbound and inbound.connected else self.state,
            "bot_user_id": inbound.bot_id if inbound else None,
        }

"""Wiring: bot identity (auth.test), the Socket Mode connection feeding the kit's inbound store,
the kit's outbound executor on `outbound:slack` over `SlackPlatform`, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import aiohttp
from redis.asyncio import Redis
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.adapter import FileAccess, SlackPlatform
from codex_broker.ingress_slack.api import SlackApi, api_session, make_web_client
from codex_broker.ingress_slack.capabilities import Capabilities
from codex_broker.ingress_slack.config import Settings
from codex_broker.ingress_slack.connection import GuardedSocketModeHandler
from codex_broker.ingress_slack.errors import SlackCallError
from codex_broker.ingress_slack.inbound import SlackInbound, dead_letters, inbound_store
from codex_broker.ingress_slack.normalize import BotIdentity
from codex_broker.ingress_slack.posting import Poster
from codex_broker.ingress_slack.users import UserDirectory
from codex_broker.ingress_slack.view import SlackViews
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.ingress_kit.outbound import OutboundConfig, run_outbound
from codex_broker.libs.ingress_kit.parts import PostedParts
from codex_broker.libs.logs import redactor
from codex_broker.libs.rawlog import KIND_SLACK_EVENTS

log = logging.getLogger(__name__)

IDENTITY_BACKOFF_MAX_S = 300.0


class SlackService:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        self.bus = StreamBus(
            redis, dead_letter_stream=self.keys.dead_letter_stream, maxlen=settings.stream_maxlen
        )
        self.state = "starting"
        self.me: BotIdentity | None = None
        self._identified = asyncio.Event()
        self._handler: GuardedSocketModeHandler | None = None

    # ---- lifecycle tasks (each takes the shared stop event) ----------------------------------

    async def run_socket(self, stop: asyncio.Event) -> None:
        async with api_session(self.settings.slack_api_timeout_s) as session:
            await self._run_socket(stop, session)

    async def _run_socket(self, stop: asyncio.Event, session: aiohttp.ClientSession) -> None:
        client = self._web_client(session)
        api = self._api(client)
        me = await self._identify(api, stop)
        if me is None:
            return
        users = UserDirectory(api, ttl_s=self.settings.slack_user_cache_ttl_s)
        app = AsyncApp(
            client=client,
            process_before_response=True,
            request_verification_enabled=False,
            raise_error_for_unhandled_request=True,  # → SlackInbound.on_error: acked, dead-lettered
            logger=logging.getLogger("slack_bolt"),
        )
        inbound = SlackInbound(
            inbound_store(self.redis, self.keys, maxlen=self.settings.stream_maxlen),
            users,
            me,
            raw_log=self.settings.raw_log(KIND_SLACK_EVENTS, redactor()),
            dead_letters=dead_letters(self.redis, self.keys),
        )
        inbound.register(app)
        handler = GuardedSocketModeHandler(
            app,
            self.settings.slack_app_token.get_secret_value(),
            web_client=client,
            reject=inbound.reject,
            ignorable=inbound.ignorable,
        )
        self._handler = handler
        self.state = "connecting"
        try:
            await handler.connect_async()  # retries by itself until connected or closed
            self.state = "ok"
            log.info("slack socket mode connected", extra={"team_id": me.team_id, "bot_user_id": me.user_id})
            await stop.wait()
        finally:
            metrics.SOCKET_CONNECTED.set(0)
            with contextlib.suppress(Exception):
                await handler.close_async()
            with contextlib.suppress(Exception):
                await handler.client.aiohttp_client_session.close()
            self._handler = None

    async def run_outbound(self, stop: asyncio.Event) -> None:
        waiter = asyncio.create_task(self._identified.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        if stop.is_set() or self.me is None:
            return
        async with aiohttp.ClientSession() as http, api_session(self.settings.slack_api_timeout_s) as session:
            settings = self.settings
            await run_outbound(
                self._platform(self.me, http, session),
                self.redis,
                self.keys,
                self.bus,
                stop,
                OutboundConfig(
                    consumer=settings.instance_id,
                    interval_s=settings.slack_progress_interval_s,
                    concurrency=settings.outbound_concurrency,
                    block_ms=settings.outbound_block_ms,
                    max_deliveries=settings.max_deliveries,
                    claim_idle_ms=settings.claim_idle_ms,
                ),
            )

    # ---- readiness, heartbeat ------------------------------------------------------------------

    async def ready(self) -> dict[str, Any]:
        if self.state != "ok":
            return {"slack": self.state}
        connected = self._handler is not None and await self._handler.client.is_connected()
        metrics.SOCKET_CONNECTED.set(1 if connected else 0)
        return {"slack": "ok" if connected else "reconnecting"}

    def details(self) -> dict[str, Any]:
        me = self.me
        return {
            "slack": self.state,
            "team_id": me.team_id if me else None,
            "bot_user_id": me.user_id if me else None,
        }

    # ---- building blocks -----------------------------------------------------------------------

    def _web_client(self, session: aiohttp.ClientSession) -> AsyncWebClient:
        return make_web_client(
            self.settings.slack_bot_token.get_secret_value(),
            self.settings.slack_api_url,
            timeout_s=self.settings.slack_api_timeout_s,
            session=session,
        )

    def _api(self, client: AsyncWebClient) -> SlackApi:
        return SlackApi(
            client,
            max_retries=self.settings.slack_max_retries,
            retry_after_max_s=self.settings.slack_retry_after_max_s,
        )

    async def _identify(self, api: SlackApi, stop: asyncio.Event) -> BotIdentity | None:
        """auth.test until it answers; a bad token keeps the service up but not ready."""
        backoff = 1.0
        while not stop.is_set():
            try:
                data = await api.call("auth.test")
            except SlackCallError as exc:
                self.state = f"auth.test failed: {exc.error}"
                log.error("slack auth.test failed", extra={"error": exc.error, "retry_in_s": backoff})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, IDENTITY_BACKOFF_MAX_S)
                continue
            self.me = BotIdentity(
                user_id=str(data.get("user_id") or ""),
                bot_id=str(data.get("bot_id") or ""),
                app_id=str(data.get("app_id") or ""),
                team_id=str(data.get("team_id") or ""),
                allow_bots=self.settings.slack_allow_bots,
                forward_unmentioned=self.settings.slack_forward_unmentioned,
            )
            self._identified.set()
            return self.me
        return None

    def _platform(
        self, me: BotIdentity, http: aiohttp.ClientSession, session: aiohttp.ClientSession
    ) -> SlackPlatform:
        settings = self.settings
        api = self._api(self._web_client(session))
        capabilities = Capabilities(self.redis, self.keys, me.team_id)
        poster = Poster(api, PostedParts(self.redis, self.keys, "slack"))
        views = SlackViews(
            api=api,
            redis=self.redis,
            keys=self.keys,
            poster=poster,
            capabilities=capabilities,
            native_enabled=settings.slack_native_streaming,
        )
        return SlackPlatform(
            api=api,
            me=me,
            users=UserDirectory(api, ttl_s=settings.slack_user_cache_ttl_s),
            capabilities=capabilities,
            poster=poster,
            views=views,
            files=FileAccess(
                http=http,
                bot_token=settings.slack_bot_token.get_secret_value(),
                data_root=settings.data_root.resolve(),
                upload_roots=[root.resolve() for root in settings.upload_roots],
                download_hosts=settings.download_hosts,
                download_cap_bytes=settings.slack_download_max_bytes,
            ),
            history_max_pages=settings.slack_history_max_pages,
        )

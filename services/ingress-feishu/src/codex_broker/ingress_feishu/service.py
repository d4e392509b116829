"""Wiring of ingress-feishu: the long connection under a lease feeding the kit's inbound store,
the kit's outbound executor on `outbound:feishu` over `FeishuPlatform`, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from codex_broker.ingress_feishu.adapter import FeishuPlatform
from codex_broker.ingress_feishu.api import FeishuApi
from codex_broker.ingress_feishu.config import Settings
from codex_broker.ingress_feishu.connection import LongConnection
from codex_broker.ingress_feishu.inbound import DEAD_LETTER_GROUP, DEAD_LETTER_SOURCE, FeishuInbound
from codex_broker.ingress_feishu.lease import Connection, ConnectionSupervisor, Lease
from codex_broker.ingress_feishu.normalize import InboundPolicy
from codex_broker.ingress_feishu.users import UserNames
from codex_broker.ingress_feishu.view import FeishuViews
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.inbound import InboundStore
from codex_broker.libs.ingress_kit.outbound import OutboundConfig, run_outbound
from codex_broker.libs.logs import redactor
from codex_broker.libs.rawlog import KIND_FEISHU_EVENTS
from codex_broker.libs.runtime import Task

log = logging.getLogger(__name__)

AT_ONLY_DEGRADED = (
    "degraded: FEISHU_GROUP_MESSAGE_MODE=at_only, plain thread replies without @bot are ignored"
)


class FeishuIngress:
    """Everything the service runs, built from settings and two Redis clients."""

    def __init__(self, settings: Settings, redis: Redis, *, sync_redis: SyncRedis | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        self.bot_open_id = settings.feishu_bot_open_id
        self.supervisor: ConnectionSupervisor | None = None
        self.bot_error: str | None = None
        if not settings.enabled:
            return
        self.api = FeishuApi(
            app_id=settings.feishu_app_id,
            app_secret=settings.feishu_app_secret.get_secret_value(),
            domain=settings.feishu_domain,
            timeout_s=settings.feishu_request_timeout_s,
        )
        self.sync_redis = sync_redis or SyncRedis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        self.names = UserNames(
            self.sync_redis, self.keys, self.api.user_name, ttl_s=settings.feishu_user_cache_ttl_s
        )
        self.sink = FeishuInbound(
            InboundStore(redis, self.keys, platform="feishu", maxlen=settings.stream_maxlen),
            DeadLetterWriter(redis, self.keys, source=DEAD_LETTER_SOURCE, group=DEAD_LETTER_GROUP),
            self.policy,
            raw_log=settings.raw_log(KIND_FEISHU_EVENTS, redactor()),
            names=self.names,
        )
        self.platform = FeishuPlatform(
            self.api,
            redis,
            self.keys,
            FeishuViews(self.api, redis, self.keys),
            data_root=settings.data_root,
            bot_open_id=self.bot_open_id,
        )
        self.bus = StreamBus(
            redis, dead_letter_stream=self.keys.dead_letter_stream, maxlen=settings.stream_maxlen
        )
        self.outbound = OutboundConfig(
            consumer=settings.instance_id,
            interval_s=1.0 / settings.feishu_card_updates_per_s,
            concurrency=settings.feishu_outbound_concurrency,
            max_deliveries=settings.max_deliveries,
            claim_idle_ms=settings.claim_idle_ms,
        )

    def policy(self) -> InboundPolicy:
        return InboundPolicy(
            bot_open_id=self.bot_open_id,
            group_mode=self.settings.feishu_group_message_mode,
            p2p_enabled=self.settings.feishu_p2p,
        )

    # ---- tasks ---------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Task]:
        if not self.settings.enabled:
            log.warning("ingress-feishu disabled", extra={"reason": self.settings.disabled_reason})
            return []
        return [self.run_connection, self.run_outbound]

    async def run_connection(self, stop: asyncio.Event) -> None:
        # name lookups and the store run here, not on lark's loop
        self.names.loop = self.sink.loop = asyncio.get_running_loop()
        if not await self._resolve_bot(stop):
            return
        lease = Lease(
            self.redis,
            self.keys.lease(f"feishu-ws:{self.settings.feishu_app_id}"),
            self.settings.instance_id,
            self.settings.feishu_ws_lease_ms,
        )
        self.supervisor = ConnectionSupervisor(lease=lease, connect=self._connection)
        await self.supervisor.run(stop)

    def _connection(self) -> Connection:
        return LongConnection(
            app_id=self.settings.feishu_app_id,
            app_secret=self.settings.feishu_app_secret.get_secret_value(),
            domain=self.settings.feishu_domain,
            on_message=self.sink.on_message,
            on_card_action=self.sink.on_card_action,
            on_malformed=self.sink.dead_letter,
        )

    async def _resolve_bot(self, stop: asyncio.Event) -> bool:
        """The bot's open_id tells a mention of us from others; without it nothing can start."""
        backoff = 1.0
        while not self.bot_open_id and not stop.is_set():
            try:
                self.bot_open_id = await self.api.bot_open_id()
                self.platform.bot_open_id = self.bot_open_id
                self.bot_error = None
                log.info("feishu bot identified", extra={"bot_open_id": self.bot_open_id})
            except Exception as exc:
                self.bot_error = str(exc)[:300]
                log.warning(
                    "bot info unavailable; retrying", extra={"error": self.bot_error, "in_s": backoff}
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 60.0)
        return bool(self.bot_open_id)

    async def run_outbound(self, stop: asyncio.Event) -> None:
        await run_outbound(
            self.platform,
            self.redis,
            self.keys,
            self.bus,
            stop,
            self.outbound,
            on_give_up=self.platform.report_failure,
        )

    # ---- health --------------------------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        if not self.settings.enabled:
            return f"disabled: {self.settings.disabled_reason}"
        if not self.bot_open_id:
            return "starting: resolving bot open_id" + (f" ({self.bot_error})" if self.bot_error else "")
        return self.supervisor.state if self.supervisor is not None else "starting"

    def heartbeat_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "feishu_ws": self.connection_state,
            "group_message_mode": self.settings.feishu_group_message_mode,
        }
        if self.settings.enabled and self.settings.feishu_group_message_mode == "at_only":
            details["degraded"] = AT_ONLY_DEGRADED
        return details

    def ready(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def checks() -> dict[str, Any]:
            state = self.connection_state
            result: dict[str, Any] = {"feishu_ws": "ok" if state in ("connected", "standby") else state}
            if self.settings.enabled and self.settings.feishu_group_message_mode == "at_only":
                result["feishu_mode"] = AT_ONLY_DEGRADED
            return result

        return checks

    def close(self) -> None:
        if self.settings.enabled:
            with contextlib.suppress(Exception):
                self.sync_redis.close()

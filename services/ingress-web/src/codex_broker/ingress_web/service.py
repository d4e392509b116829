"""Wiring: the thread store as the `web` platform, the kit's executor on `outbound:web`, the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import urlparse

import uvicorn
from redis.asyncio import Redis

from codex_broker.ingress_web.adapter import WebPlatform
from codex_broker.ingress_web.app import WebContext, create_app
from codex_broker.ingress_web.auth import cookie_key
from codex_broker.ingress_web.config import Settings
from codex_broker.ingress_web.files import FileStore
from codex_broker.ingress_web.login_codes import LoginCodes
from codex_broker.ingress_web.thread_store import ThreadStore
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.ingress_kit.inbound import InboundStore
from codex_broker.libs.ingress_kit.live_view import LiveViews
from codex_broker.libs.ingress_kit.outbound import OutboundExecutor, outbound_consumer

log = logging.getLogger(__name__)

COOKIE_KEY_BYTES = 32
SHUTDOWN_GRACE_S = 3


class _Server(uvicorn.Server):
    """uvicorn inside our loop: the service frame owns SIGTERM/SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class WebService:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys
        self.bus = StreamBus(
            redis, dead_letter_stream=self.keys.dead_letter_stream, maxlen=settings.stream_maxlen
        )
        self.threads = ThreadStore(redis, self.keys, feed_maxlen=settings.web_feed_maxlen)
        self.files = FileStore(
            redis, self.keys, web_root=settings.web_root, sessions_root=settings.data_root / "sessions"
        )
        self.platform = WebPlatform(
            self.threads,
            self.files,
            outbox_root=settings.outbox_root,
            max_file_bytes=settings.web_max_upload_bytes,
        )
        self.serving = False

    async def run_outbound(self, stop: asyncio.Event) -> None:
        views = LiveViews(
            self.platform, self.redis, self.keys, interval_s=self.settings.web_progress_interval_s
        )
        executor = OutboundExecutor(self.platform, self.redis, self.keys, views)
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

    async def run_http(self, stop: asyncio.Event) -> None:
        token = (
            self.settings.broker_admin_token.get_secret_value() if self.settings.broker_admin_token else None
        )
        ctx = WebContext(
            threads=self.threads,
            files=self.files,
            inbound=InboundStore(self.redis, self.keys, platform="web", maxlen=self.settings.stream_maxlen),
            cookie_key=cookie_key(token, None if token else await self._random_cookie_key()),
            admin_token=token or None,
            public_host=urlparse(self.settings.chat_url).hostname,
            cookie_secure=self.settings.web_cookie_secure,
            session_max_age_s=self.settings.web_session_days * 86400,
            max_upload_bytes=self.settings.web_max_upload_bytes,
            stop=stop,
            login_codes=LoginCodes(self.redis, self.keys),
        )
        config = uvicorn.Config(
            create_app(ctx),
            host=self.settings.http_web_host,
            port=self.settings.http_web_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        server = _Server(config)
        serve = asyncio.create_task(server.serve())
        self.serving = True
        log.info("web chat serving", extra={"url": self.settings.chat_url})
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([serve, stopped], return_when=asyncio.FIRST_COMPLETED)
            if serve in done:  # could not bind, or crashed: the process must end so it is restarted
                raise RuntimeError(f"the web chat server stopped on its own: {serve.exception()!r}")
        finally:
            stopped.cancel()
            self.serving = False
            server.should_exit = True
            await serve

    async def _random_cookie_key(self) -> bytes:
        """Without an admin token: one random key for every replica (the first one sets it)."""
        await self.redis.set(self.keys.web_cookie_key, secrets.token_hex(COOKIE_KEY_BYTES), nx=True)
        raw = await self.redis.get(self.keys.web_cookie_key)
        return bytes.fromhex(raw.decode() if isinstance(raw, bytes) else str(raw))

    async def ready(self) -> dict[str, Any]:
        return {"web": "ok" if self.serving else "starting"}

    def details(self) -> dict[str, Any]:
        return {"web": "ok" if self.serving else "starting", "url": self.settings.chat_url}

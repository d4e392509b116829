"""Entry point of ingress-discord: `python -m codex_broker.ingress_discord`."""

from __future__ import annotations

import asyncio
import logging

from codex_broker.ingress_discord import metrics
from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.service import DiscordService
from codex_broker.libs.runtime import redis_client, run_disabled, run_service, start_process

SERVICE = "ingress-discord"

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    reason = settings.disabled_reason
    if reason is not None:
        metrics.ENABLED.set(0)
        return await run_disabled(
            service=SERVICE, platform="discord", reason=reason, settings=settings, redis=redis, stop=stop
        )
    metrics.ENABLED.set(1)
    service = DiscordService(settings, redis)
    return await run_service(
        service=SERVICE,
        settings=settings,
        redis=redis,
        tasks=[service.run_gateway, service.run_outbound],
        ready=service.ready,
        heartbeat_details=service.details,
        stop=stop,
    )


def main() -> int:
    settings = start_process(SERVICE, Settings, quiet_loggers=("discord",))
    return asyncio.run(serve(settings))

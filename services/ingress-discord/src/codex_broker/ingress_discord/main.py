"""Entry point of ingress-discord: `python -m codex_broker.ingress_discord`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from codex_broker.ingress_discord import metrics
from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.service import DiscordService
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.runtime import private_data_root, redis_client, run_service
from codex_broker.libs.settings import load_settings

SERVICE = "ingress-discord"

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    reason = settings.disabled_reason
    if reason is not None:
        # stays up (heartbeat, /metrics) so that a deployment without Discord is healthy but says why
        state = f"disabled: {reason}"
        log.warning(state)
        metrics.ENABLED.set(0)

        async def disabled() -> dict[str, Any]:
            return {"discord": state}

        return await run_service(
            service=SERVICE,
            settings=settings,
            redis=redis,
            tasks=[],
            ready=disabled,
            heartbeat_details=lambda: {"discord": state},
            stop=stop,
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
    settings = load_settings(Settings)
    private_data_root(settings.data_root)
    setup_logging(
        SERVICE, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    logging.getLogger("discord").setLevel(max(logging.WARNING, logging.getLogger().level))
    return asyncio.run(serve(settings))

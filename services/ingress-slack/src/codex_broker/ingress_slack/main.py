"""Entry point of ingress-slack: `python -m codex_broker.ingress_slack`."""

from __future__ import annotations

import asyncio
import logging

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.config import Settings
from codex_broker.ingress_slack.service import SlackService
from codex_broker.libs.runtime import redis_client, run_disabled, run_service, start_process

SERVICE = "ingress-slack"

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    reason = settings.disabled_reason
    if reason is not None:
        metrics.ENABLED.set(0)
        return await run_disabled(
            service=SERVICE, platform="slack", reason=reason, settings=settings, redis=redis, stop=stop
        )
    metrics.ENABLED.set(1)
    service = SlackService(settings, redis)
    return await run_service(
        service=SERVICE,
        settings=settings,
        redis=redis,
        tasks=[service.run_socket, service.run_outbound],
        ready=service.ready,
        heartbeat_details=service.details,
        stop=stop,
    )


def main() -> int:
    settings = start_process(SERVICE, Settings, quiet_loggers=("slack_bolt", "slack_sdk"))
    return asyncio.run(serve(settings))

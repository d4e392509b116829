"""Entry point of ingress-web: `python -m codex_broker.ingress_web`."""

from __future__ import annotations

import asyncio

from codex_broker.ingress_web.config import Settings
from codex_broker.ingress_web.service import WebService
from codex_broker.libs.runtime import redis_client, run_service, start_process

SERVICE = "ingress-web"


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    service = WebService(settings, redis)
    return await run_service(
        service=SERVICE,
        settings=settings,
        redis=redis,
        tasks=[service.run_http, service.run_outbound],
        ready=service.ready,
        heartbeat_details=service.details,
        stop=stop,
    )


def main() -> int:
    settings = start_process(SERVICE, Settings)
    return asyncio.run(serve(settings))

"""Entry point of ingress-web: `python -m codex_broker.ingress_web`."""

from __future__ import annotations

import asyncio

from codex_broker.ingress_web.config import Settings
from codex_broker.ingress_web.service import WebService
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.runtime import private_data_root, redis_client, run_service
from codex_broker.libs.settings import load_settings

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
    settings = load_settings(Settings)
    private_data_root(settings.data_root)
    setup_logging(
        SERVICE, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    return asyncio.run(serve(settings))

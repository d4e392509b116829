"""Entry point of the orchestrator: `python -m codex_broker.orchestrator`."""

from __future__ import annotations

import asyncio

from codex_broker.libs import paths
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.runtime import redis_client, run_service
from codex_broker.libs.settings import load_settings
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.service import Orchestrator

SERVICE = "orchestrator"


async def serve(settings: Settings) -> int:
    redis = redis_client(settings.redis_url)
    stop = asyncio.Event()
    orchestrator = Orchestrator(settings, redis, stop=stop)
    paths.repos_root(settings.data_root).mkdir(parents=True, exist_ok=True)
    return await run_service(
        service=SERVICE,
        settings=settings,
        redis=redis,
        tasks=orchestrator.tasks(),
        ready=orchestrator.readiness,
        heartbeat_details=orchestrator.heartbeat_details,
        stop=stop,
    )


def main() -> int:
    settings = load_settings(Settings)
    setup_logging(
        SERVICE, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    return asyncio.run(serve(settings))

"""Entry point of the orchestrator: `python -m codex_broker.orchestrator`."""

from __future__ import annotations

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis

from codex_broker.libs import paths
from codex_broker.libs.runtime import run_service, start_process
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.service import Orchestrator

SERVICE = "orchestrator"


def orchestrator_redis(settings: Settings) -> Redis:
    """Many sessions work at once: a bounded pool that waits for a free connection instead of
    failing (redis-py's default pool raises past 100 connections)."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=20,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


async def serve(settings: Settings) -> int:
    redis = orchestrator_redis(settings)
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
    settings = start_process(SERVICE, Settings)
    return asyncio.run(serve(settings))

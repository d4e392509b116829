"""Entry point of ingress-feishu: Feishu / Lark in (long connection) and out (outbound stream)."""

from __future__ import annotations

import asyncio

from codex_broker.ingress_feishu.config import Settings
from codex_broker.ingress_feishu.connection import route_lark_logs
from codex_broker.ingress_feishu.service import FeishuIngress
from codex_broker.libs.runtime import redis_client, run_service, start_process

SERVICE = "ingress-feishu"


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    ingress = FeishuIngress(settings, redis)
    try:
        return await run_service(
            service=SERVICE,
            settings=settings,
            redis=redis,
            tasks=ingress.tasks,
            ready=ingress.ready(),
            heartbeat_details=ingress.heartbeat_details,
            stop=stop,
        )
    finally:
        ingress.close()


def main() -> int:
    settings = start_process(SERVICE, Settings)
    route_lark_logs()
    return asyncio.run(serve(settings))

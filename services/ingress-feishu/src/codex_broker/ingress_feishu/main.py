"""Entry point of ingress-feishu: Feishu / Lark in (long connection) and out (outbound stream)."""

from __future__ import annotations

import asyncio

from codex_broker.ingress_feishu.config import Settings
from codex_broker.ingress_feishu.connection import route_lark_logs
from codex_broker.ingress_feishu.service import FeishuIngress
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.runtime import private_data_root, redis_client, run_service
from codex_broker.libs.settings import load_settings

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
    settings = load_settings(Settings)
    private_data_root(settings.data_root)
    setup_logging(
        SERVICE, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    route_lark_logs()
    return asyncio.run(serve(settings))

"""Entry point of ingress-feishu (placeholder frame until its issue lands: heartbeat, /metrics, drain)."""

from __future__ import annotations

import asyncio

from pydantic import Field

from codex_broker.libs.logs import setup_logging
from codex_broker.libs.runtime import redis_client, run_service
from codex_broker.libs.settings import CommonSettings, load_settings

SERVICE = "ingress-feishu"


class Settings(CommonSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535, description="Port of /metrics and health")


def main() -> int:
    settings = load_settings(Settings)
    setup_logging(SERVICE, level=settings.log_level, data_root=settings.data_root)
    return asyncio.run(
        run_service(service=SERVICE, settings=settings, redis=redis_client(settings.redis_url), tasks=[])
    )

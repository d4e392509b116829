"""Entry point of the http-api: the Starlette app under uvicorn inside the service frame."""

from __future__ import annotations

import asyncio
from functools import partial

from codex_broker.http_api.app import create_app
from codex_broker.http_api.config import Settings
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.session_listener import listen_hosts
from codex_broker.libs.runtime import run_service, serve_http, start_process
from codex_broker.libs.streamstats import stream_stats_task

SERVICE = "http-api"


async def serve(settings: Settings) -> int:
    ctx = AppContext.create(settings)
    app = create_app(ctx)
    try:
        return await run_service(
            service=SERVICE,
            settings=settings,
            redis=ctx.redis,
            tasks=[
                *(
                    partial(serve_http, app, host, settings.http_api_port)
                    for host in listen_hosts(settings.http_api_host, settings.session_api_host)
                ),
                # stream depth is a property of Redis: the http-api samples and exports it
                lambda stop: stream_stats_task(ctx.redis, settings.keys, stop),
            ],
        )
    finally:
        if ctx.sync_redis is not None:
            ctx.sync_redis.close()


def main() -> int:
    settings = start_process(SERVICE, Settings)
    return asyncio.run(serve(settings))

"""/healthz (process up), /readyz (Redis, fresh heartbeats, a ready runner), /metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.context import AppContext
from codex_broker.libs.heartbeat import read_heartbeats

RUNNER_SERVICE = "codex-runner"


def readiness(
    heartbeats: list[dict[str, Any]], required: list[str], ttl_s: float, now: float
) -> dict[str, Any]:
    """Pure verdict over heartbeat payloads: each required service fresh, one runner with room."""
    fresh = [hb for hb in heartbeats if now - float(hb.get("at") or 0) <= ttl_s]
    services = {str(hb.get("service")) for hb in fresh}
    checks: dict[str, Any] = {}
    for service in required:
        checks[f"service:{service}"] = "ok" if service in services else "fail: no fresh heartbeat"
    runners = [hb for hb in fresh if hb.get("service") == RUNNER_SERVICE and _has_capacity(hb)]
    checks["runner"] = "ok" if runners else "fail: no ready codex-runner"
    return checks


def _has_capacity(heartbeat: dict[str, Any]) -> bool:
    capacity = heartbeat.get("capacity")
    return not isinstance(capacity, int) or capacity > 0


def health_routes(ctx: AppContext) -> list[BaseRoute]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "service": "http-api", "instance": ctx.settings.instance_id})

    async def readyz(_: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            await ctx.redis.ping()
            checks["redis"] = "ok"
            heartbeats = await read_heartbeats(ctx.redis, ctx.keys)
            checks.update(
                readiness(heartbeats, ctx.settings.ready_services, ctx.settings.heartbeat_ttl_s, time.time())
            )
        except Exception as exc:  # Redis down is a readiness answer, not an error
            checks["redis"] = f"fail: {type(exc).__name__}"
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]

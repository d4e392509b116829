"""Admin operations for rollouts: the release mix across live instances, and the Drain button
(the same control as `codex-broker drain`), plus a session's read-only transcript.

Its own module (and static/ops.js on the page) so that the routes file gains one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import profiles, transcript
from codex_broker.http_api.admin.audit_routes import admin_action, admin_identity
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.codex_bin import find_codex_bin
from codex_broker.libs.drain import RUNNER_SERVICE, DrainError, drain
from codex_broker.libs.heartbeat import mixed_versions, read_heartbeats, versions

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_INSTANCE = 200

Api = Callable[..., Route]


def runner_rows(beats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "instance": beat.get("instance"),
            "host": beat.get("host"),
            "version": beat.get("version") or "unknown",
            "active": beat.get("active"),
            "capacity": beat.get("capacity"),
            "draining": bool(beat.get("draining")),
        }
        for beat in beats
        if beat.get("service") == RUNNER_SERVICE
    ]


def release_view(beats: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions → instances, whether they are mixed, and the runners one can drain (pure)."""
    return {
        "versions": versions(beats),
        "mixed": mixed_versions(beats) is not None,
        "runners": runner_rows(beats),
    }


def _instance(request: Request) -> str:
    instance = str(request.path_params["instance"])
    if not instance or len(instance) > MAX_INSTANCE or not instance.isprintable():
        raise ApiError(400, "invalid_instance", field="instance")
    return instance


def routes(ctx: AppContext, api: Api) -> list[BaseRoute]:
    redis, keys, data_root = ctx.redis, ctx.keys, Path(ctx.settings.data_root)

    async def get_release(_: Request) -> Response:
        return JSONResponse({"ok": True, **release_view(await read_heartbeats(redis, keys))}, headers=HEADERS)

    async def drain_runner(request: Request) -> Response:
        instance = _instance(request)
        try:
            sent = await drain(redis, keys, instance)
        except DrainError:
            raise ApiError(404, "unknown_runner", field="instance") from None
        await admin_action(ctx, request, "runner.drain", instance)
        log.info(
            "admin drained runner",
            extra={
                "runner": instance,
                "admin": admin_identity(request),
                "control_id": sent["control_id"],
                "active": sent["active"],
            },
        )
        return JSONResponse({"ok": True, **sent}, headers=HEADERS)

    async def get_transcript(request: Request) -> Response:
        session_key = request.path_params["session_key"]
        found = await transcript.of_session(redis, keys, session_key, ctx.redactor)
        link = transcript.web_chat_link(ctx.settings.web_chat_url, session_key)
        return JSONResponse({"ok": True, "web_chat_url": link, **found}, headers=HEADERS)

    async def get_accounts(_: Request) -> Response:
        found = await profiles.accounts(redis, keys, data_root, find_codex_bin(ctx.settings.codex_bin))
        return JSONResponse({"ok": True, "accounts": found}, headers=HEADERS)

    return [
        api("/admin/api/ops/accounts", GET=get_accounts),
        api("/admin/api/ops/release", GET=get_release),
        api("/admin/api/ops/runners/{instance}/drain", POST=drain_runner),
        api("/admin/api/ops/transcript/{session_key:path}", GET=get_transcript),
    ]

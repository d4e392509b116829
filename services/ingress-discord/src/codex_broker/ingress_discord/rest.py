"""Discord REST through discord.py's own HTTP client, and its errors as `PlatformError`s.

discord.py's `HTTPClient.request` keeps the per-route buckets from the `X-RateLimit-*` headers,
waits before a bucket runs dry, and on a 429 sleeps `retry_after` and tries again (up to five
times). What still fails after that is a transient `PlatformError`: the kit redelivers the
action later, so a rate-limit storm delays delivery but loses nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord
from discord.http import Route

from codex_broker.ingress_discord import metrics
from codex_broker.libs.ingress_kit.platform import PlatformError

T = TypeVar("T")
THREAD_ALREADY_CREATED = 160004
_PERMANENT_STATUS = frozenset({400, 401, 403, 404, 405, 413})


def error_of(exc: discord.HTTPException) -> PlatformError:
    """A failed call: 4xx other than 429 cannot succeed by retrying the same call."""
    name = {403: "missing_access", 404: "not_found", 413: "too_large", 429: "rate_limited"}.get(
        exc.status, f"http_{exc.status}"
    )
    if exc.code:
        name = f"{name}:{exc.code}"
    return PlatformError(name, permanent=exc.status in _PERMANENT_STATUS)


async def call(method: str, make: Callable[[], Awaitable[T]]) -> T:
    """One REST call, counted by method and result."""
    try:
        result = await make()
    except discord.HTTPException as exc:
        error = error_of(exc)
        metrics.API_CALLS.labels(method=method, result=error.error.partition(":")[0]).inc()
        raise PlatformError(error.error, permanent=error.permanent, method=method) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        metrics.API_CALLS.labels(method=method, result="connection_error").inc()
        raise PlatformError("connection_error", permanent=False, method=method) from exc
    metrics.API_CALLS.labels(method=method, result="ok").inc()
    return result


class Rest:
    """The few endpoints the adapter uses, as plain JSON in and out."""

    def __init__(self, http: discord.http.HTTPClient) -> None:
        self.http = http

    def _request(self, route: Route, **kwargs: Any) -> Any:
        return self.http.request(route, **kwargs)

    async def send(
        self, channel_id: str, payload: dict[str, Any], files: list[discord.File] | None = None
    ) -> Any:
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        if files:
            form: list[dict[str, Any]] = [{"name": "payload_json", "value": discord.utils._to_json(payload)}]
            for index, file in enumerate(files):
                form.append(
                    {
                        "name": f"files[{index}]",
                        "value": file.fp,
                        "filename": file.filename,
                        "content_type": "application/octet-stream",
                    }
                )
            return await call("messages.create", lambda: self._request(route, files=files, form=form))
        return await call("messages.create", lambda: self._request(route, json=payload))

    async def edit(self, channel_id: str, message_id: str, payload: dict[str, Any]) -> Any:
        route = Route(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            channel_id=channel_id,
            message_id=message_id,
        )
        return await call("messages.edit", lambda: self._request(route, json=payload))

    async def history(
        self, channel_id: str, *, limit: int, before: str | None = None, after: str | None = None
    ) -> list[dict[str, Any]]:
        route = Route("GET", "/channels/{channel_id}/messages", channel_id=channel_id)
        params: dict[str, Any] = {"limit": limit}
        if before:
            params["before"] = before
        if after:
            params["after"] = after
        found = await call("messages.list", lambda: self._request(route, params=params))
        return list(found or [])

    async def start_thread(
        self, channel_id: str, message_id: str, *, name: str, archive_minutes: int
    ) -> dict[str, Any] | None:
        """A thread on the message (the created thread channel); one that already exists (another
        replica, a redelivery) is fine (None)."""
        route = Route(
            "POST",
            "/channels/{channel_id}/messages/{message_id}/threads",
            channel_id=channel_id,
            message_id=message_id,
        )
        body = {"name": name, "auto_archive_duration": archive_minutes}

        async def make() -> dict[str, Any] | None:
            try:
                created = await self._request(route, json=body)
            except discord.HTTPException as exc:
                if exc.code != THREAD_ALREADY_CREATED:
                    raise
                return None
            return created if isinstance(created, dict) else None

        return await call("threads.create", make)

    async def typing(self, channel_id: str) -> None:
        route = Route("POST", "/channels/{channel_id}/typing", channel_id=channel_id)
        await call("channels.typing", lambda: self._request(route))

    async def react(self, channel_id: str, message_id: str, emoji: str, *, remove: bool) -> None:
        route = Route(
            "DELETE" if remove else "PUT",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
            channel_id=channel_id,
            message_id=message_id,
            emoji=emoji,
        )
        await call("reactions", lambda: self._request(route))

    async def interaction_callback(self, interaction_id: str, token: str, body: dict[str, Any]) -> None:
        route = Route(
            "POST",
            "/interactions/{interaction_id}/{token}/callback",
            interaction_id=interaction_id,
            token=token,
        )
        await call("interactions.callback", lambda: self._request(route, json=body))

    async def followup(self, application_id: str, token: str, body: dict[str, Any]) -> Any:
        route = Route(
            "POST", "/webhooks/{application_id}/{token}", application_id=application_id, token=token
        )
        return await call(
            "interactions.followup", lambda: self._request(route, json=body, params={"wait": 1})
        )

    async def register_commands(self, application_id: str, commands: list[dict[str, Any]]) -> None:
        route = Route("PUT", "/applications/{application_id}/commands", application_id=application_id)
        await call("commands.register", lambda: self._request(route, json=commands))

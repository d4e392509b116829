"""The Socket Mode connection: Bolt's handler, guarded so that every envelope gets an answer.

The listeners (inbound.py) store first and ack last; this handler covers what never reaches a
listener: a payload Bolt itself cannot read is dead-lettered and acked, and events the ingress
ignores anyway are acked without Bolt.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse


class GuardedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt itself raises on some payloads of the wrong shape (building a listener's arguments,
    before any listener or error handler runs), and such an envelope would never be acked: it is
    dead-lettered and acked here instead. Events the ingress ignores anyway (`ignorable`) are
    acked at once, without Bolt. Otherwise the same as Bolt's `handle`."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str,
        *,
        reject: Callable[[Any, str], Awaitable[BoltResponse | None]],
        ignorable: Callable[[Any], bool] = lambda _: False,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, app_token, **kwargs)
        self._reject = reject
        self._ignorable = ignorable

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        if req.type == "events_api" and self._ignorable(req.payload):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception as exc:
            rejected = await self._reject(req.payload, f"{type(exc).__name__}: {exc}")
            if rejected is None:
                return
            response = rejected
        await send_async_response(client, req, response, started)

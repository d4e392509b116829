"""The project's fake Slack plus a clock: when each user message went out on the Socket Mode
websocket, and when the answer to it (`ok <marker>`, see `_timed_model`) reached the Web API.

The final answer counts when it arrives in `chat.postMessage` (fallback surface) or in
`chat.appendStream` / `chat.stopStream` (native streaming). Times are `time.monotonic()`.

    python -m bench._timed_slack [--port N ...]   # the fake's own options (tests/fakes/fake_slack.py):
                                                  # prints its JSON info line, serves until SIGTERM

Extra control endpoints (besides the fake's own `/_fake/*`):
    POST /_bench/burst {"messages": [{channel, user, text, thread_ts?}, ...]} -> {"ts": [...]}
         every message pushed in one go, from the fake's own loop
    GET  /_bench/wait?count=N&timeout=S   returns when N answers arrived (or the timeout passed)
    GET  /_bench/timings -> {"pushed": {marker: t}, "answered": {marker: [t, method]}}
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.fake_slack import FakeSlack, main

MARKER = re.compile(r"bm[0-9a-f]{12}")
ANSWER = re.compile(r"ok (bm[0-9a-f]{12})")


class TimedSlack(FakeSlack):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.pushed: dict[str, float] = {}
        self.answered: dict[str, tuple[float, str]] = {}
        self._changed: asyncio.Condition | None = None

    # ---- clocks ------------------------------------------------------------------------------

    async def _send(self, envelope: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        await super()._send(envelope, *args, **kwargs)
        event = (envelope.get("payload") or {}).get("event") or {}
        if envelope.get("type") == "events_api" and not event.get("bot_id"):
            found = MARKER.search(str(event.get("text") or ""))
            if found:
                self.pushed.setdefault(found.group(0), time.monotonic())

    def _answer_seen(self, method: str, texts: list[str]) -> None:
        now = time.monotonic()
        for text in texts:
            for marker in ANSWER.findall(text):
                if marker not in self.answered:
                    self.answered[marker] = (now, method)
                    self._notify()

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:

            async def wake() -> None:
                async with changed:
                    changed.notify_all()

            asyncio.get_running_loop().create_task(wake())

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        result = super()._m_chat_postMessage(args)
        if result.get("ok"):
            self._answer_seen("chat.postMessage", [str(args.get("text") or "")])
        return result

    def _m_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        result = super()._m_chat_appendStream(args)
        if result.get("ok"):
            self._answer_seen("chat.appendStream", _chunk_texts(args))
        return result

    def _m_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        result = super()._m_chat_stopStream(args)
        if result.get("ok"):
            self._answer_seen("chat.stopStream", _chunk_texts(args))
        return result

    # ---- control -----------------------------------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        super()._add_control_routes(app)
        app.router.add_post("/_bench/burst", self._burst)
        app.router.add_get("/_bench/wait", self._wait_answers)
        app.router.add_get("/_bench/timings", self._timings)

    async def _burst(self, request: web.Request) -> web.Response:
        body = await request.json()
        sent = [self._user_message(**m) for m in body["messages"]]
        return web.json_response({"ts": [s.ts for s in sent]})

    async def _wait_answers(self, request: web.Request) -> web.Response:
        count = int(request.query["count"])
        deadline = time.monotonic() + float(request.query.get("timeout", "60"))
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            while len(self.answered) < count and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        return web.json_response({"answered": len(self.answered)})

    async def _timings(self, request: web.Request) -> web.Response:
        return web.json_response({"pushed": self.pushed, "answered": self.answered})


def _chunk_texts(args: dict[str, Any]) -> list[str]:
    texts = [str(args.get("markdown_text") or "")]
    for chunk in args.get("chunks") or []:
        if isinstance(chunk, dict):
            texts.append(str(chunk.get("text") or ""))
    return texts


if __name__ == "__main__":
    raise SystemExit(main(fake_class=TimedSlack))

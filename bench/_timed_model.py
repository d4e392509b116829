"""The fake model in instant mode, plus a clock: when each turn's first request arrived and when
its answer was completely written.

A turn is recognised by a marker (`bm` + 12 hex digits, see `_common.marker()`) in the latest
user text of the request; the answer is `ok <marker>`, so the final chat message can be matched
to the turn too. Times are `time.monotonic()` (CLOCK_MONOTONIC: comparable across processes on
one machine). Everything else (SSE framing, handler) is the project's fake model.

    python -m bench._timed_model --port N
    GET /_timings -> {"turns": {marker: [first_request_at, last_done_at, requests]}, "count": n}
    POST /_hold {"count": N, "timeout_s": T} -> answers wait until N requests are held (a slow
        model: every turn is live at once), or T seconds passed; POST /_release lets them go.
    GET /_held -> {"held": n}
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakes.fake_model import (
    _completed,
    _created,
    _Handler,
    _message_events,
    _State,
    latest_user_text,
)

MARKER = re.compile(r"bm[0-9a-f]{12}")


def _sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def answer_body(marker: str | None) -> bytes:
    """The answer after `response.created` (which goes out at once, as a real model's does)."""
    text = f"ok {marker}" if marker else "ok"
    return _sse([*_message_events(text, 1), _completed("resp_timed")])


CREATED = _sse([_created("resp_timed")])


class _TimedHandler(_Handler):
    server: _TimedServer  # type: ignore[assignment]

    def do_POST(self) -> None:
        self._arrived = time.monotonic()  # before the body is read: the request is here
        if self.path in ("/_hold", "/_release"):
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            self.server.gate.set(body.get("count"), float(body.get("timeout_s") or 60))
            self._json(200, {"ok": True})
            return
        super().do_POST()

    def do_GET(self) -> None:
        if self.path.startswith("/_timings"):
            with self.server.timing_lock:
                payload = {"turns": dict(self.server.turns), "count": self.server.state.count}
            self._json(200, payload)
        elif self.path.startswith("/_held"):
            self._json(200, {"held": self.server.gate.held})
        else:
            super().do_GET()

    def _responses(self, raw: bytes) -> None:
        found = MARKER.findall(latest_user_text(json.loads(raw or b"{}")))
        marker = found[-1] if found else None
        self._start_stream()
        self._chunk(CREATED)
        self.server.gate.wait()  # a slow model: the response is open, the answer still to come
        self._chunk(answer_body(marker))
        self._end_stream()
        done = time.monotonic()
        with self.server.timing_lock:
            self.server.state.count += 1
            if marker is not None:
                entry = self.server.turns.setdefault(marker, [self._arrived, done, 0])
                entry[1] = done
                entry[2] += 1


class _Gate:
    """Holds answers back until `count` requests are waiting (or the timeout): turns that stay
    live together, as with a model that takes a while, without sleeping for a fixed time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count: int | None = None
        self._deadline = 0.0
        self.held = 0

    def set(self, count: int | None, timeout_s: float) -> None:
        with self._cond:
            self._count = int(count) if count else None
            self._deadline = time.monotonic() + timeout_s
            self.held = 0
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            if self._count is None:
                return
            self.held += 1
            self._cond.notify_all()
            while self._count is not None and self.held < self._count:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)


class _TimedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # a burst of 200 turns opens that many connections at once

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _TimedHandler)
        self.state = _State(instant=True)
        self.turns: dict[str, list[Any]] = {}
        self.timing_lock = threading.Lock()
        self.gate = _Gate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = _TimedServer(args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""The fake model in instant mode, plus a clock: when each turn's first request arrived and when
its answer was completely written.

A turn is recognised by a marker (`bm` + 12 hex digits, see `_common.marker()`) in the latest
user text of the request; the answer is `ok <marker>`, so the final chat message can be matched
to the turn too. Times are `time.monotonic()` (CLOCK_MONOTONIC: comparable across processes on
one machine). Everything else (SSE framing, handler) is the project's fake model.

    python -m bench._timed_model --port N
    GET /_timings -> {"turns": {marker: [first_request_at, last_done_at, requests]}, "count": n}
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


def answer_body(marker: str | None) -> bytes:
    text = f"ok {marker}" if marker else "ok"
    events = [_created("resp_timed"), *_message_events(text, 1), _completed("resp_timed")]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class _TimedHandler(_Handler):
    server: _TimedServer  # type: ignore[assignment]

    def do_POST(self) -> None:
        self._arrived = time.monotonic()  # before the body is read: the request is here
        super().do_POST()

    def do_GET(self) -> None:
        if self.path.startswith("/_timings"):
            with self.server.timing_lock:
                payload = {"turns": dict(self.server.turns), "count": self.server.state.count}
            self._json(200, payload)
        else:
            super().do_GET()

    def _responses(self, raw: bytes) -> None:
        found = MARKER.findall(latest_user_text(json.loads(raw or b"{}")))
        marker = found[-1] if found else None
        self._start_stream()
        self._chunk(answer_body(marker))
        self._end_stream()
        done = time.monotonic()
        with self.server.timing_lock:
            self.server.state.count += 1
            if marker is not None:
                entry = self.server.turns.setdefault(marker, [self._arrived, done, 0])
                entry[1] = done
                entry[2] += 1


class _TimedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # a burst of 200 turns opens that many connections at once

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _TimedHandler)
        self.state = _State(instant=True)
        self.turns: dict[str, list[Any]] = {}
        self.timing_lock = threading.Lock()


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

"""The project's fake OpenAI Responses endpoint (POST /v1/responses, SSE), scripted per test.

Codex 0.169 is pointed at it through a custom `model_provider` (see tests/fakes/codex_home.py).
It streams exactly the event shapes Codex consumes: `response.created`,
`response.output_item.added` / `response.output_text.delta` / `response.output_item.done` for
an assistant message or a `function_call`, and `response.completed` with usage — or
`response.failed`, or a plain HTTP error.

A text reply may carry `phase` (on the message item, as the Responses API marks commentary and
final answers) and `hold_s` (the response stays open that long after the message: see
`held_reply`), or `gate` (it stays open until the test calls `release(gate)`: `gated_reply`).

Scripting: a queue of replies, each optionally matched on a substring of the latest user input
(so parallel threads can get different scripts). A request takes the first queued reply whose
`match` is in its latest user text (or that has no `match`); with none queued it answers
`echo: <latest user text>`. Every request body is recorded so tests can assert what the model saw.

In-process:  `with FakeModel() as fake: fake.script(text_reply("hi"))` (a thread on 127.0.0.1).
Subprocess:  `python -m tests.fakes.fake_model --port N [--instant]`, scripted over HTTP with
`POST /_script`, `GET /_requests`, `POST /_reset` (see `FakeModelClient`).
Instant mode (benchmarks): a fixed tiny answer, nothing parsed or recorded beyond a counter.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Event = dict[str, Any]


# ---- reply builders (plain JSON so they can cross the HTTP control endpoint) -----------------


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _created(response_id: str) -> Event:
    return {"type": "response.created", "response": {"id": response_id}}


def _completed(response_id: str, input_tokens: int = 10, output_tokens: int = 5) -> Event:
    return {
        "type": "response.completed",
        "response": {"id": response_id, "usage": _usage(input_tokens, output_tokens)},
    }


def _message_events(text: str, chunks: int, phase: str | None = None) -> list[Event]:
    item_id = f"msg_{uuid.uuid4().hex[:12]}"
    extra = {"phase": phase} if phase else {}
    added = {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {
            "type": "message",
            "role": "assistant",
            "id": item_id,
            "status": "in_progress",
            "content": [],
            **extra,
        },
    }
    size = max(1, -(-len(text) // max(1, chunks)))
    deltas = [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": text[i : i + size],
        }
        for i in range(0, len(text), size)
    ]
    done = {
        "type": "response.output_item.done",
        "output_index": 0,
        "item": {
            "type": "message",
            "role": "assistant",
            "id": item_id,
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
            **extra,
        },
    }
    return [added, *deltas, done]


def text_reply(text: str, *, match: str | None = None, chunks: int = 3, delay_s: float = 0.0) -> dict:
    """An assistant answer streamed in `chunks` deltas, `delay_s` apart (slow stream when > 0)."""
    return {"match": match, "kind": "text", "text": text, "chunks": chunks, "delay_s": delay_s}


def held_reply(text: str, *, hold_s: float, match: str | None = None, phase: str | None = None) -> dict:
    """A complete answer whose response stays open `hold_s` seconds after it (a model still busy
    after writing it): a steer within that time takes over the turn after a complete answer.
    `phase` marks the message as Codex's Responses API does (`final_answer`, `commentary`)."""
    return {**text_reply(text, match=match), "hold_s": hold_s, "phase": phase}


GATE_MAX_S = 600.0  # a gate nobody releases lets go after this (bounded, like every wait)


def gated_reply(text: str, *, gate: str, match: str | None = None) -> dict:
    """A complete answer whose response stays open until `FakeModel.release(gate)`: a turn the
    test knows is still running (a slow model) until it says otherwise."""
    return {**text_reply(text, match=match), "gate": gate}


def slow_reply(text: str, *, match: str | None = None, chunks: int = 40, delay_s: float = 0.25) -> dict:
    """A long-running stream for interrupt and steer tests (about chunks * delay_s seconds)."""
    return text_reply(text, match=match, chunks=chunks, delay_s=delay_s)


def tool_call_reply(
    command: str, *, match: str | None = None, tool: str | None = None, escalate: bool = False
) -> dict:
    """A function call that runs `command` in a shell. The tool name and argument shape follow
    what the request offers (`exec_command` {cmd}, `shell_command` {command}, `shell` [argv]),
    unless `tool` forces one. `escalate` asks to run outside the sandbox, which makes Codex
    request an approval under `on-request`. Queue a second reply for the request carrying the
    tool output."""
    return {"match": match, "kind": "tool_call", "command": command, "tool": tool, "escalate": escalate}


def function_call_reply(name: str, arguments: dict[str, Any], *, match: str | None = None) -> dict:
    """A call of the function `name` with `arguments` as is (e.g. a dynamic tool the client
    registered, or one it did not: Codex answers an unknown name itself). Queue a second reply
    for the request carrying the function's output."""
    return {"match": match, "kind": "function_call", "name": name, "arguments": arguments}


def http_error_reply(
    status: int = 500, message: str = "fake model error", *, match: str | None = None
) -> dict:
    return {"match": match, "kind": "http_error", "status": status, "message": message}


def failed_reply(
    message: str = "fake model failure", *, code: str = "server_error", match: str | None = None
) -> dict:
    """HTTP 200 whose stream ends in `response.failed`."""
    return {"match": match, "kind": "failed", "code": code, "message": message}


# ---- request inspection ----------------------------------------------------------------------


def latest_user_text(body: dict[str, Any]) -> str:
    """Text of the last `role=user` message in the request input (what the user said last)."""
    for item in reversed(body.get("input") or []):
        if item.get("type") == "message" and item.get("role") == "user":
            parts = [c.get("text", "") for c in item.get("content") or [] if c.get("type") == "input_text"]
            return "\n".join(parts)
    return ""


def user_texts(body: dict[str, Any]) -> list[str]:
    """Every user message text in the request input, oldest first."""
    texts = []
    for item in body.get("input") or []:
        if item.get("type") == "message" and item.get("role") == "user":
            texts.append(
                "\n".join(
                    c.get("text", "") for c in item.get("content") or [] if c.get("type") == "input_text"
                )
            )
    return texts


def tool_outputs(body: dict[str, Any]) -> list[str]:
    """Outputs of function calls that Codex sends back to the model."""
    outputs = []
    for item in body.get("input") or []:
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            outputs.append(output if isinstance(output, str) else json.dumps(output))
    return outputs


def _tool_names(body: dict[str, Any]) -> set[str]:
    names = set()
    for tool in body.get("tools") or []:
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            names.add(name)
    return names


def offered_tool_names(body: dict[str, Any]) -> set[str]:
    """Names of the tools a request offered the model (to check which tools a thread has)."""
    return _tool_names(body)


def _function_call(reply: dict, body: dict[str, Any]) -> tuple[str, str]:
    command = reply["command"]
    offered = _tool_names(body)
    name = reply.get("tool") or next(
        (n for n in ("exec_command", "shell_command", "shell") if n in offered), "exec_command"
    )
    escalation = (
        {"sandbox_permissions": "require_escalated", "justification": f"run {command}"}
        if reply.get("escalate")
        else {}
    )
    if name == "exec_command":
        return name, json.dumps({"cmd": command, "yield_time_ms": 10_000, **escalation})
    if name == "shell_command":
        return name, json.dumps({"command": command, **escalation})
    return name, json.dumps({"command": ["bash", "-lc", command], **escalation})


# ---- the fake --------------------------------------------------------------------------------


@dataclass
class _State:
    instant: bool = False
    api_key: str | None = None  # when set, requests without `Bearer <api_key>` get a 401
    replies: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    gates: dict[str, threading.Event] = field(default_factory=dict)

    def gate(self, name: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def take(self, text: str) -> dict | None:
        with self.lock:
            for i, reply in enumerate(self.replies):
                if not reply.get("match") or reply["match"] in text:
                    return self.replies.pop(i)
        return None


_INSTANT_BODY = (
    "".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n"
        for e in [_created("resp_instant"), *_message_events("ok", 1), _completed("resp_instant")]
    )
).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read /_requests instead
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/_requests"):
            with self.server.state.lock:
                self._json(
                    200, {"requests": list(self.server.state.requests), "count": self.server.state.count}
                )
        elif self.path.rstrip("/").endswith("/models"):
            # like the API: with a key configured, the model list takes only that key
            # (`codex-broker doctor --live` tries an API-key profile's key here)
            api_key = self.server.state.api_key
            if api_key and self.headers.get("authorization") != f"Bearer {api_key}":
                self._json(
                    401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
                )
            else:
                self._json(200, {"data": [], "models": []})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        state = self.server.state
        if self.path == "/_script":
            payload = json.loads(raw or b"[]")
            with state.lock:
                state.replies.extend(payload if isinstance(payload, list) else [payload])
            self._json(200, {"ok": True})
        elif self.path == "/_reset":
            with state.lock:
                state.replies.clear()
                state.requests.clear()
                state.count = 0
            self._json(200, {"ok": True})
        elif self.path.rstrip("/").endswith("/responses"):
            self._responses(raw)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def _responses(self, raw: bytes) -> None:
        state = self.server.state
        if state.api_key and self.headers.get("authorization") != f"Bearer {state.api_key}":
            with state.lock:
                state.count += 1
            self._json(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            return
        if state.instant:
            with state.lock:
                state.count += 1
            self._start_stream()
            self._chunk(_INSTANT_BODY)
            self._end_stream()
            return
        body = json.loads(raw or b"{}")
        with state.lock:
            state.count += 1
            state.requests.append(body)
        text = latest_user_text(body)
        reply = state.take(text) or text_reply(f"echo: {text}", chunks=1)
        if reply["kind"] == "http_error":
            self._json(reply["status"], {"error": {"message": reply["message"], "type": "server_error"}})
            return
        self._start_stream()
        try:
            self._stream(reply, body)
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):  # Codex interrupted the turn and hung up
            self.close_connection = True

    def _stream(self, reply: dict, body: dict) -> None:
        response_id = f"resp_{uuid.uuid4().hex[:12]}"
        self._event(_created(response_id))
        if reply["kind"] == "failed":
            self._event(
                {
                    "type": "response.failed",
                    "response": {
                        "id": response_id,
                        "error": {"code": reply["code"], "message": reply["message"]},
                    },
                }
            )
            return
        if reply["kind"] in ("tool_call", "function_call"):
            if reply["kind"] == "tool_call":
                name, arguments = _function_call(reply, body)
            else:
                name, arguments = reply["name"], json.dumps(reply["arguments"])
            call = {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:12]}",
                "call_id": f"call_{uuid.uuid4().hex[:12]}",
                "name": name,
                "arguments": arguments,
            }
            self._event(
                {"type": "response.output_item.added", "output_index": 0, "item": {**call, "arguments": ""}}
            )
            self._event({"type": "response.output_item.done", "output_index": 0, "item": call})
        else:
            delay = float(reply.get("delay_s") or 0)
            for event in _message_events(reply["text"], int(reply.get("chunks") or 1), reply.get("phase")):
                self._event(event)
                if delay and event["type"] == "response.output_text.delta":
                    time.sleep(delay)
            if reply.get("hold_s"):
                time.sleep(float(reply["hold_s"]))
            if reply.get("gate"):
                self.server.state.gate(str(reply["gate"])).wait(GATE_MAX_S)  # type: ignore[attr-defined]
        self._event(_completed(response_id))

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _event(self, event: Event) -> None:
        self._chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, state: _State) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class FakeModel:
    """In-process fake on 127.0.0.1 (a free port unless given), served from a daemon thread."""

    def __init__(self, port: int = 0, *, instant: bool = False, api_key: str | None = None) -> None:
        self._state = _State(instant=instant, api_key=api_key)
        self._server = _Server(port, self._state)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-model", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeModel:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._state.lock:
            gates = list(self._state.gates.values())
        for gate in gates:  # nothing stays held past the fake
            gate.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def script(self, *replies: dict) -> None:
        with self._state.lock:
            self._state.replies.extend(replies)

    @property
    def requests(self) -> list[dict]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def request_count(self) -> int:
        return self._state.count

    def release(self, gate: str) -> None:
        """Let the responses held by `gate` complete."""
        self._state.gate(gate).set()

    def pending_replies(self) -> int:
        with self._state.lock:
            return len(self._state.replies)

    def reset(self) -> None:
        with self._state.lock:
            self._state.replies.clear()
            self._state.requests.clear()
            self._state.count = 0


class FakeModelClient:
    """Scripts a fake running as a separate process (`python -m tests.fakes.fake_model`)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = f"http://127.0.0.1:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def script(self, *replies: dict) -> None:
        self._call("POST", "/_script", list(replies))

    @property
    def requests(self) -> list[dict]:
        return list(self._call("GET", "/_requests")["requests"])

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def ready(self) -> bool:
        try:
            self._call("GET", "/_requests")
        except OSError:
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI Responses endpoint for Codex tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instant", action="store_true", help="fixed tiny answer, nothing recorded")
    parser.add_argument("--api-key", default=None, help="answer 401 unless this bearer key is sent")
    args = parser.parse_args(argv)
    server = _Server(args.port, _State(instant=args.instant, api_key=args.api_key))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

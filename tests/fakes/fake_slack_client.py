"""Drive a fake Slack running as a process (`python -m tests.fakes.fake_slack`) over HTTP.

`FakeSlackClient` mirrors the driving and inspecting methods of `FakeSlack` (see the docstring of
tests/fakes/fake_slack.py); `start_fake_slack_process()` spawns the process on a free port and
returns a handle whose `.client` is ready and whose `.env` holds SLACK_API_URL / SLACK_BOT_TOKEN /
SLACK_APP_TOKEN for the ingress-slack process::

    with start_fake_slack_process() as slack:
        spawn_ingress(env={**os.environ, **slack.env})
        slack.client.wait_connected()
        sent = slack.client.user_message("C1", "U1", f"<@{slack.info['bot_user_id']}> hi")
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.fake_slack import Sent

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeSlackClient:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        # trust_env=False: never route loopback test traffic through a proxy from the environment
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(f"/_fake/{path}", json=body or {})
        response.raise_for_status()
        return response.json()

    def _get(self, path: str, **query: Any) -> Any:
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items() if v is not None}
        response = self._http.get(f"/_fake/{path}", params=params)
        response.raise_for_status()
        return response.json()

    # ---- driving ---------------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, **profile: Any) -> dict[str, Any]:
        return self._post("users", {"user_id": user_id, "name": name, **profile})  # type: ignore[no-any-return]

    def add_file(
        self, name: str, content: bytes, mimetype: str = "application/octet-stream"
    ) -> dict[str, Any]:
        body = {"name": name, "content_base64": base64.b64encode(content).decode(), "mimetype": mimetype}
        return self._post("files", body)  # type: ignore[no-any-return]

    def user_message(self, channel: str, user: str, text: str, **options: Any) -> Sent:
        data = self._post("messages", {"channel": channel, "user": user, "text": text, **options})
        return Sent(ts=data["ts"], event_ids=data["event_ids"], envelope_ids=data["envelope_ids"])

    def push_event(self, event: dict[str, Any], event_id: str | None = None) -> str:
        return str(self._post("events", {"event": event, "event_id": event_id})["envelope_id"])

    def resend(self, event_id: str, connection: int | None = None) -> str:
        body = {"event_id": event_id, "connection": connection}
        return str(self._post("resend", body)["envelope_id"])

    def seed_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        body = {"channel": channel, "user": user, "text": text, "thread_ts": thread_ts}
        return str(self._post("seed", body)["ts"])

    def click_button(
        self,
        channel: str,
        user: str,
        message_ts: str,
        action_id: str,
        value: str = "",
        thread_ts: str | None = None,
    ) -> str:
        body = {
            "channel": channel,
            "user": user,
            "message_ts": message_ts,
            "action_id": action_id,
            "value": value,
            "thread_ts": thread_ts,
        }
        return str(self._post("actions", body)["envelope_id"])

    def submit_view(self, user: str, view: dict[str, Any]) -> str:
        return str(self._post("views", {"user": user, "view": view})["envelope_id"])

    def slash_command(
        self, channel: str, user: str, command: str, text: str = "", thread_ts: str | None = None
    ) -> str:
        body = {"channel": channel, "user": user, "command": command, "text": text, "thread_ts": thread_ts}
        return str(self._post("commands", body)["envelope_id"])

    def disconnect(self, reason: str = "refresh_requested") -> None:
        self._post("disconnect", {"reason": reason})

    def drop_connections(self) -> None:
        self._post("drop")

    def fail(self, method: str, error: str = "internal_error", **options: Any) -> None:
        self._post("failures", {"method": method, "error": error, **options})

    def refuse_streaming(self, error: str = "unknown_method") -> None:
        self.fail("chat.startStream", error, times=None)

    def clear_failures(self) -> None:
        self._http.delete("/_fake/failures").raise_for_status()

    def configure(self, **options: Any) -> None:
        self._post("config", options)

    # ---- inspecting ------------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return self._get("calls", method=method)  # type: ignore[no-any-return]

    def messages(
        self, channel: str | None = None, thread_ts: str | None = None, from_bot: bool | None = None
    ) -> list[dict[str, Any]]:
        return self._get("messages", channel=channel, thread_ts=thread_ts, from_bot=from_bot)  # type: ignore[no-any-return]

    def envelopes(self, event_id: str | None = None) -> list[dict[str, Any]]:
        return self._get("envelopes", event_id=event_id)  # type: ignore[no-any-return]

    def acked(self, event_id: str) -> bool:
        return any(e["acked"] for e in self.envelopes(event_id))

    def deliveries(self, event_id: str) -> int:
        return len(self.envelopes(event_id))

    def uploads(self) -> list[dict[str, Any]]:
        rows = self._get("uploads")
        for row in rows:
            row["content"] = base64.b64decode(row.pop("content_base64"))
        return rows  # type: ignore[no-any-return]

    def streams(self) -> dict[str, dict[str, Any]]:
        return self._get("streams")  # type: ignore[no-any-return]

    def reactions(self, channel: str, ts: str) -> list[str]:
        return self._get("reactions", channel=channel, ts=ts)  # type: ignore[no-any-return]

    def statuses(self) -> list[dict[str, Any]]:
        return self._get("statuses")  # type: ignore[no-any-return]

    def ephemerals(self) -> list[dict[str, Any]]:
        return self._get("ephemerals")  # type: ignore[no-any-return]

    def views(self) -> list[dict[str, Any]]:
        return self._get("views")  # type: ignore[no-any-return]

    def connections(self) -> int:
        return int(self._get("state")["connections"])

    def connection_ids(self) -> list[int]:
        return [int(n) for n in self._get("state")["connection_ids"]]

    def wait_connected(self, timeout_s: float = 15.0, count: int = 1) -> None:
        _wait(lambda: self.connections() >= count, timeout_s, "a Socket Mode connection")

    def wait_acked(self, event_id: str, timeout_s: float = 15.0) -> None:
        _wait(lambda: self.acked(event_id), timeout_s, f"ack of {event_id}")


def _wait(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class FakeSlackProcess:
    process: subprocess.Popen[str]
    info: dict[str, Any]
    client: FakeSlackClient

    @property
    def env(self) -> dict[str, str]:
        """Environment for an ingress-slack process talking to this fake."""
        return {
            "SLACK_API_URL": self.info["api_url"],
            "SLACK_BOT_TOKEN": self.info["bot_token"],
            "SLACK_APP_TOKEN": self.info["app_token"],
        }

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def start_fake_slack_process(
    *args: str,
    timeout_s: float = 20.0,
    module: str = "tests.fakes.fake_slack",
    client_timeout_s: float = 10.0,
) -> Iterator[FakeSlackProcess]:
    """Spawn `python -m tests.fakes.fake_slack --port 0 ARGS…`; stopped (and waited for) on exit.
    `module`: a module that serves a subclass the same way (bench/_timed_slack.py)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    handle: FakeSlackProcess | None = None
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while not line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline().strip()
        if not line:
            raise RuntimeError("fake slack process did not start")
        info = json.loads(line)
        handle = FakeSlackProcess(
            process=process, info=info, client=FakeSlackClient(info["base_url"], timeout_s=client_timeout_s)
        )
        yield handle
    finally:
        if handle is not None:
            handle.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(timeout=10)

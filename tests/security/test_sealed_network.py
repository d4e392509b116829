"""Red team, network: a sealed session's real Codex commands reach the broker API and nothing else.

The runner gives a session with network access a network namespace of its own whose only way
out is Codex's managed proxy, allow-listing the broker API's host (SESSION_API_HOST, a loopback
address of its own) and the operator's NETWORK_ALLOWED_DOMAINS. Two stand-in listeners play the
parts: "the API" on 127.0.0.42 and "another service" on 127.0.0.1 (as Redis, the metrics ports
or a developer's database would be); the tests' real Redis on 127.0.0.1 is probed too. Each probe
is its own command: Codex fails a whole command whose request the proxy blocked.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import (
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.conftest import REDIS_URL
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply, tool_outputs

pytestmark = pytest.mark.codex

SESSION_HOST = "127.0.0.42"
REDIS_PORT = urlsplit(REDIS_URL).port or 6379
API_BODY = "stand-in-api-3b8e"
OTHER_BODY = "other-service-c41d"


class Listener:
    """A one-line HTTP server on a free port of `host`, in a thread."""

    def __init__(self, host: str, body: str) -> None:
        payload = body.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def api() -> Iterator[Listener]:
    with Listener(SESSION_HOST, API_BODY) as listener:
        yield listener


@pytest.fixture
def other() -> Iterator[Listener]:
    with Listener("127.0.0.1", OTHER_BODY) as listener:
        yield listener


def probe(name: str, command: str) -> str:
    return f"echo '<<{name}:'\"$( {command} 2>&1 )\"'>>'"


def direct_connect(host: str, port: int) -> str:
    code = (
        "import socket\ns=socket.socket()\ns.settimeout(3)\n"
        f"try:\n    s.connect(('{host}',{port})); print('connected')\n"
        "except OSError as e:\n    print('refused', e.errno)"
    )
    return f'python3 -c "{code}"'


def tunnel_ping(port: int) -> str:
    """CONNECT through the proxy the sandbox hands out, then speak Redis."""
    code = (
        "import os,socket,urllib.parse\n"
        "u=urllib.parse.urlparse(os.environ['HTTP_PROXY'])\n"
        "s=socket.create_connection((u.hostname,u.port),3)\n"
        f"s.sendall(b'CONNECT 127.0.0.1:{port} HTTP/1.1\\\\r\\\\nHost: x\\\\r\\\\n\\\\r\\\\n')\n"
        "print(s.recv(100).split(b'\\\\r\\\\n')[0])\n"
        "s.sendall(b'PING\\\\r\\\\n')\nprint(s.recv(100))"
    )
    return f'python3 -c "{code}"'


@pytest.fixture
def data_root(tmp_path: Path, fake_model: FakeModel) -> Path:
    root = tmp_path / "data"
    write_codex_home(paths.codex_home(root), fake_model.base_url)
    return root


@dataclass
class Probing:
    """One sealed session with network access, its runner pointed at the stand-in API."""

    data_root: Path
    fake_model: FakeModel
    redis: Redis
    keys: Keys
    redis_url: str
    api: Listener

    async def run(self, commands: list[str], **runner: object) -> str:
        """Each command as one exec of the turn; every output as the model saw it."""
        self.fake_model.script(*(tool_call_reply(command) for command in commands), text_reply("probed"))
        settings = runner_settings(
            self.data_root, self.keys.prefix, self.redis_url, broker_api_base=self.api.url, **runner
        )
        async with running_runner(settings):
            request = new_request(self.data_root, "probe the network", network_access=True)
            await publish_run(self.redis, self.keys, request)
            events = await wait_terminal(self.redis, self.keys, request)
        assert events[-1].kind == "completed", events[-1].text
        return "\n".join(tool_outputs(self.fake_model.requests[-1]))


@pytest.fixture
def probing(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, redis_url: str, api: Listener
) -> Probing:
    return Probing(data_root, fake_model, redis, keys, redis_url, api)


async def test_commands_reach_the_broker_api_and_nothing_else_on_the_machine(
    probing: Probing, api: Listener, other: Listener
) -> None:
    output = await probing.run(
        [
            probe("api", f"curl -sS -m 10 {api.url}/"),
            probe("direct_redis", direct_connect("127.0.0.1", REDIS_PORT)),
            probe("direct_other", direct_connect("127.0.0.1", int(other.url.rsplit(":", 1)[1]))),
            probe("tunnel_redis", tunnel_ping(REDIS_PORT)),
            probe("proxied_other", f"curl -sS -m 10 {other.url}/"),
            # written so that no literal address is in the command: the proxy must stop it
            probe("metadata", "M=169.254; curl -sS -m 10 http://$M.169.254/latest/meta-data/"),
        ]
    )
    assert f"<<api:{API_BODY}>>" in output, output
    assert "<<direct_redis:refused" in output and "<<direct_other:refused" in output, output
    assert "+PONG" not in output and OTHER_BODY not in output, output
    assert output.count("was blocked") + output.count("403") >= 3, output  # tunnel, other, metadata


async def test_an_operator_allow_listed_host_is_reachable(probing: Probing, other: Listener) -> None:
    """The allow-list is the operator's (NETWORK_ALLOWED_DOMAINS), so that the test above
    cannot pass merely because the proxy reaches nothing."""
    output = await probing.run(
        [probe("proxied_other", f"curl -sS -m 10 {other.url}/")], network_allowed_domains=["127.0.0.1"]
    )
    assert f"<<proxied_other:{OTHER_BODY}>>" in output, output

"""Red team: a sealed session's commands try the bus and the admin API over loopback.

The broker's side is real: the embedded Redis exactly as `codex-broker up` starts it (password in
DATA_ROOT/secrets), the runner on that Redis, the http-api app under uvicorn with the admin token
`up` makes. The session has network access (NETWORK_ACCESS, the default), so its commands run
behind Codex's managed proxy: a direct socket to Redis is refused before Redis is reached, and
the broker API's host is admitted, so the admin request does arrive and must be turned away for
want of the token. What would open either door is a secret file the session cannot read. A
control run with sealing off (no proxy, files readable) shows both walls on their own: the bare
PING gets NOAUTH, the bare admin GET 401, and the same probes get through with the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis

from codex_broker.cli import admin_login, embedded_redis, local_secrets
from codex_broker.cli.config import Settings as CliSettings
from codex_broker.cli.supervisor import run_up
from codex_broker.http_api.config import Settings as ApiSettings
from codex_broker.http_api.context import AppContext
from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel
from tests.git_identity.support import serve_api
from tests.helpers import wait_for
from tests.security.support import run_session_probes

pytestmark = pytest.mark.codex


@dataclass(frozen=True)
class Broker:
    data_root: Path
    redis_url: str  # with the password: the broker's own view
    redis_port: int
    api_base: str
    admin_token: str
    keys: Keys
    redis: Redis

    @property
    def password_file(self) -> Path:
        return local_secrets.secret_path(self.data_root, local_secrets.REDIS_PASSWORD)

    @property
    def token_file(self) -> Path:
        return local_secrets.secret_path(self.data_root, local_secrets.ADMIN_TOKEN)


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@contextlib.asynccontextmanager
async def embedded_up(data_root: Path) -> AsyncIterator[tuple[str, int]]:
    """`up`'s embedded Redis (no services): (authed URL, port) while it runs."""
    settings = CliSettings(data_root=data_root, up_stop_grace_s=5.0, _env_file=None)  # type: ignore[call-arg]
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(run_up(settings, [], base_env={}, embedded=True, stream=out, stop=stop))
    try:
        await wait_for(
            lambda: embedded_redis.read_state(data_root) is not None or task.done(),
            timeout_s=30,
            what="the embedded Redis",
        )
        state = embedded_redis.read_state(data_root)
        assert state is not None, out.getvalue()
        port = int(state.url.rsplit(":", 1)[1].split("/", 1)[0])
        yield embedded_redis.authed_url(data_root, state.url), port
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@pytest_asyncio.fixture
async def broker(tmp_path: Path, fake_model: FakeModel, key_prefix: str) -> AsyncIterator[Broker]:
    data_root = tmp_path / "data"
    write_codex_home(paths.codex_home(data_root), fake_model.base_url)
    env: dict[str, str] = {}
    admin_login.ensure_admin_token(
        CliSettings(data_root=data_root, _env_file=None),  # type: ignore[call-arg]
        env,
    )
    async with embedded_up(data_root) as (redis_url, port):
        api_settings = ApiSettings(  # type: ignore[call-arg]
            redis_url=redis_url,
            key_prefix=key_prefix,
            shard_count=4,
            data_root=data_root,
            broker_admin_token=SecretStr(env["BROKER_ADMIN_TOKEN"]),
            _env_file=None,
        )
        ctx = AppContext.create(api_settings)
        redis = Redis.from_url(redis_url)
        try:
            async with serve_api(ctx) as api_base:
                yield Broker(
                    data_root=data_root,
                    redis_url=redis_url,
                    redis_port=port,
                    api_base=api_base,
                    admin_token=env["BROKER_ADMIN_TOKEN"],
                    keys=Keys(prefix=key_prefix, shard_count=4),
                    redis=redis,
                )
        finally:
            await redis.aclose()
            await ctx.aclose()


def _redis_says(port: int, preamble: str) -> str:
    """python3 in the session's shell: raw RESP over a socket (redis-cli may not exist)."""
    script = (
        "import socket,sys;"
        f"p={preamble};"  # the secret first: a refused socket must not hide an unreadable file
        f"s=socket.create_connection(('127.0.0.1',{port}),5);"
        "s.sendall(p+b'PING\\r\\n');"
        "import time;time.sleep(0.3);"
        "print(s.recv(500).decode().replace(chr(13),'').replace(chr(10),' '))"
    )
    return f'python3 -c "{script}"'


def _admin_get(api_base: str, header: str) -> str:
    script = (
        "import urllib.request as u,urllib.error as e;"
        f"r=u.Request('{api_base}/admin/api/sessions',headers={{{header}}});"
        "\ntry: print(u.urlopen(r,timeout=5).status)"
        "\nexcept e.HTTPError as x: print(x.code, x.read().decode())"
    )
    return f'python3 -c "{script}"'


def probes_for(broker: Broker) -> dict[str, str]:
    pw, token = broker.password_file, broker.token_file
    return {
        "redis_bare": _redis_says(broker.redis_port, "b''"),
        "redis_with_file": _redis_says(
            broker.redis_port, f"b'AUTH '+open('{pw}','rb').read().strip()+b'\\r\\n'"
        ),
        "admin_bare": _admin_get(broker.api_base, ""),
        "admin_with_file": _admin_get(broker.api_base, f"'x-admin-token':open('{token}').read().strip()"),
        "read_password": f"cat {pw}",
        "read_token": f"cat {token}",
        "read_redis_conf": f"cat {pw.parent}/redis.conf",
        "list_secrets": f"ls {pw.parent}",
        "env": "env | grep -ci -e redis -e admin_token || true",
    }


async def _probe(broker: Broker, fake_model: FakeModel, key_prefix: str, **settings: object) -> str:
    return await run_session_probes(
        broker.data_root,
        fake_model,
        broker.redis,
        broker.keys,
        key_prefix,
        broker.redis_url,
        probes_for(broker),
        # the orchestrator's default (NETWORK_ACCESS=true): sockets open, loopback included
        request_fields={"network_access": True},
        broker_api_base=broker.api_base,
        **settings,
    )


def _marker(output: str, name: str) -> str:
    return output.split(f"<<{name}:", 1)[1].split(">>", 1)[0]


def _secrets(broker: Broker) -> list[str]:
    return [broker.password_file.read_text().strip(), broker.admin_token]


async def test_a_sealed_session_reaches_neither_redis_nor_the_admin_api(
    broker: Broker, fake_model: FakeModel, key_prefix: str
) -> None:
    output = await _probe(broker, fake_model, key_prefix)
    for secret in _secrets(broker):
        assert secret not in output, output
    # Redis: refused by the proxy's network namespace (or, were it reached, NOAUTH); never PONG
    bare = _marker(output, "redis_bare")
    assert "PONG" not in bare and ("NOAUTH" in bare or "refused" in bare or "not permitted" in bare), output
    # the admin API is reached (the broker API's host is allowed) and wants its token
    assert '<<admin_bare:401 {"ok":false,"error":"admin_auth_required"}>>' in output, output
    # the secrets that would open them cannot be read from the session's shell
    for name in ("redis_with_file", "admin_with_file"):
        marker = _marker(output, name)
        assert "PONG" not in marker and not marker.startswith("200"), output
        assert "Permission denied" in marker or "No such file" in marker, output
    for name in ("read_password", "read_token", "read_redis_conf", "list_secrets"):
        marker = _marker(output, name)
        assert "Permission denied" in marker or "No such file" in marker, (name, output)
    assert "<<env:0>>" in output, output  # nothing of REDIS_URL or the admin token in its environment


async def test_the_same_probes_get_through_with_the_secrets_when_sealing_is_off(
    broker: Broker, fake_model: FakeModel, key_prefix: str
) -> None:
    """Control: unsealed, the files are readable and the very same probes open both doors, while
    the bare attempts are still refused (the secrets are what is required, not a network rule)."""
    output = await _probe(broker, fake_model, key_prefix, seal_sessions=False)
    assert "<<redis_bare:-NOAUTH Authentication required." in output, output
    assert "<<redis_with_file:+OK +PONG" in output, output
    assert "<<admin_bare:401 " in output, output
    assert "<<admin_with_file:200>>" in output, output
    for secret in _secrets(broker):
        assert secret in output, output

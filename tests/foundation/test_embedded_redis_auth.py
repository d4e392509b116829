"""`up`'s embedded Redis requires a password made once under DATA_ROOT/secrets; children get a
REDIS_URL carrying it, nothing printed or recorded shows it; the admin token is made the same way."""

from __future__ import annotations

import asyncio
import io
import json
import re
import stat
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.cli import admin_login, doctor, embedded_redis, local_secrets
from codex_broker.cli.config import Settings
from codex_broker.cli.plan import ChildPlan, plan_children
from codex_broker.cli.supervisor import run_up
from codex_broker.libs.logs import Redactor
from codex_broker.libs.settings import CommonSettings, with_credentials
from tests.helpers import wait_for_output

# A child standing in for a service: reports what its REDIS_URL opens and what a bare socket
# (a session's command without the password) gets, then idles until stopped.
PROBE = """
import os, socket, time
import redis
url = os.environ["REDIS_URL"]
client = redis.Redis.from_url(url)
client.set("probe:key", os.environ.get("ROUND", "?"))
print("authed", client.ping(), client.get("probe:seen"), flush=True)
client.set("probe:seen", "yes")
kwargs = client.connection_pool.connection_kwargs
with socket.create_connection((kwargs["host"], kwargs["port"]), timeout=5) as bare:
    bare.sendall(b"PING\\r\\n")
    print("bare", bare.recv(200).decode().strip(), flush=True)
print("admin-token", os.environ.get("BROKER_ADMIN_TOKEN", "-"), flush=True)
time.sleep(60)
"""


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_root=tmp_path / "data",
        up_stop_grace_s=2.0,
        http_api_port=4123,
        _env_file=None,  # type: ignore[call-arg]
    )


async def _until(out: io.StringIO, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
    return await wait_for_output(out, pattern, timeout_s)


async def _round(settings: Settings, number: int) -> str:
    """One `up` with the probe as its http-api child; what it printed, recorded and doctor said."""
    out, stop = io.StringIO(), asyncio.Event()
    probe = ChildPlan(
        name="http-api-1",
        service="http-api",
        index=1,
        argv=(sys.executable, "-c", PROBE),
        env={"ROUND": str(number), "PATH": "/usr/bin:/bin"},
    )
    task = asyncio.create_task(run_up(settings, [probe], base_env={}, embedded=True, stream=out, stop=stop))
    await _until(out, r"admin-token ")
    state = json.loads((embedded_redis.redis_dir(settings.data_root) / embedded_redis.STATE_FILE).read_text())
    url, source = embedded_redis.resolve_redis_url(settings)
    assert source.startswith("embedded Redis") and url != state["url"]
    code = re.search(r"#code=([A-Za-z0-9_-]+)", out.getvalue())
    assert code is not None, out.getvalue()
    client = Redis.from_url(url)
    try:  # the printed code is live in this Redis, as its hash only
        assert await client.exists(settings.keys.admin_login_code(admin_login.code_sha256(code.group(1))))
        checks = doctor.gather(settings)
    finally:
        await client.aclose()
    stop.set()
    assert await asyncio.wait_for(task, timeout=30) == 0
    return out.getvalue() + "\n" + json.dumps(state) + "\n" + "\n".join(c.line() for c in checks)


async def test_embedded_redis_requires_the_password_and_reuses_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = await _round(settings, 1)
    password_file = local_secrets.secret_path(settings.data_root, local_secrets.REDIS_PASSWORD)
    password = password_file.read_text().strip()
    assert len(password) >= 40
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o700
    assert "authed True None" in first  # the child's REDIS_URL carries the password
    assert "bare -NOAUTH Authentication required." in first  # a socket without it gets nothing
    assert password not in first  # not in up's output, embedded.json or doctor's lines
    assert "ok    redis          redis://:***@127.0.0.1:" in first
    assert "ok    redis-auth     Redis refuses connections without credentials" in first
    assert "--requirepass" not in first and "requirepass" not in " ".join(
        embedded_redis.server_argv("redis-server", 1, Path("/d"), Path("/c"))
    )

    second = await _round(settings, 2)
    assert password_file.read_text().strip() == password  # reused: the AOF data behind it survives
    assert "authed True b'yes'" in second
    assert "bare -NOAUTH Authentication required." in second


def test_local_secret_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = local_secrets.load_or_create(tmp_path, "x")
    path = local_secrets.secret_path(tmp_path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    path.parent.chmod(0o755)
    assert local_secrets.load_or_create(tmp_path, "x") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # loosened by hand: tightened again
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text("")  # an empty file is no secret
    assert local_secrets.load_or_create(tmp_path, "x") not in ("", first)


def test_up_makes_an_admin_token_only_the_http_api_and_web_chat_get(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    env: dict[str, str] = {"PATH": "/bin"}
    notes = admin_login.ensure_admin_token(settings, env)
    token = local_secrets.read_secret(
        local_secrets.secret_path(settings.data_root, local_secrets.ADMIN_TOKEN)
    )
    assert token and env["BROKER_ADMIN_TOKEN"] == token and token not in " ".join(notes)
    again: dict[str, str] = {}
    admin_login.ensure_admin_token(settings, again)
    assert again["BROKER_ADMIN_TOKEN"] == token  # reused across restarts (browser logins survive)
    children = plan_children(
        python="python",
        replicas={},
        metrics_port_base=9100,
        http_api_port=3000,
        with_worker=True,
        worker_available=True,
        base_env=env,
    )
    holders = {child.service for child in children if "BROKER_ADMIN_TOKEN" in child.env}
    assert holders == {"http-api", "ingress-web"}  # the web chat signs in with it
    configured = Settings(data_root=tmp_path / "other", broker_admin_token="mine", _env_file=None)  # type: ignore[call-arg,arg-type]
    untouched: dict[str, str] = {}
    assert admin_login.ensure_admin_token(configured, untouched) == [] and untouched == {}


def test_redis_password_setting_goes_into_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("REDIS_USERNAME", "orchestrator")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word:1")
    settings = CommonSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url == "redis://orchestrator:p%40ss%2Fword%3A1@redis:6379/0"
    assert "p@ss/word:1" in settings.secret_values()
    monkeypatch.delenv("REDIS_PASSWORD")
    assert CommonSettings(_env_file=None).redis_url == "redis://redis:6379/0"  # type: ignore[call-arg]
    assert with_credentials("redis://old:pw@h:1/0", None, "new") == "redis://:new@h:1/0"


def test_redis_url_passwords_are_redacted() -> None:
    text = (
        "REDIS_URL=redis://:s3cr3t-pw@127.0.0.1:6380/0 and rediss://worker:p%40x@redis:6379/0 redis://h:1/0"
    )
    redacted = Redactor().text(text)
    assert "s3cr3t-pw" not in redacted and "p%40x" not in redacted
    assert "redis://:[REDACTED]@127.0.0.1:6380/0" in redacted and "redis://h:1/0" in redacted
    settings = CommonSettings(redis_url="redis://:s3cr3t-pw@127.0.0.1:6380/0", _env_file=None)  # type: ignore[call-arg]
    assert "s3cr3t-pw" in settings.secret_values()  # the children's redactors know it too

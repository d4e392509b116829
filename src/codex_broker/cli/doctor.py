"""`codex-broker doctor`: preflight checks, one line each (ok / warn / fail).

The `check_*` functions are pure verdicts over facts; `gather` does the I/O (ping Redis, run
`codex --version`, probe DATA_ROOT) and feeds them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis import exceptions as redis_errors

from codex_broker.cli import embedded_redis
from codex_broker.cli.config import Settings
from codex_broker.ingress_web.config import Settings as WebSettings
from codex_broker.libs import codex_sandbox
from codex_broker.libs.codex_bin import CODEX_VERSION, find_codex_bin
from codex_broker.libs.paths import codex_home
from codex_broker.libs.settings import load_settings

Verdict = Literal["ok", "warn", "fail"]
_VERSION = re.compile(r"(\d+\.\d+\.\d+(?:[-.][0-9A-Za-z.]+)?)")


@dataclass(frozen=True)
class Check:
    status: Verdict
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name:<14} {self.detail}"


def safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_redis(url: str | None, source: str, error: str | None, server_bin: str | None) -> Check:
    if url is None:  # REDIS_URL unset, nothing embedded running: `up` will start one
        if server_bin:
            return Check("ok", "redis", f"REDIS_URL unset: `up` starts an embedded {server_bin}")
        return Check("fail", "redis", "REDIS_URL unset and no redis-server found (install one or set it)")
    if error is not None:
        return Check("fail", "redis", f"{safe_url(url)} ({source}) unreachable: {error}")
    return Check("ok", "redis", f"{safe_url(url)} answers ({source})")


def check_redis_auth(url: str | None, answers_anonymously: bool | None) -> Check | None:
    """A Redis that answers a connection without credentials is open to a session's commands,
    which can open sockets on the machine (NETWORK_ACCESS)."""
    if url is None:
        return Check("ok", "redis-auth", "`up` starts its embedded Redis with a password")
    if answers_anonymously is None:  # unreachable: the redis line says so
        return None
    if answers_anonymously:
        return Check(
            "warn",
            "redis-auth",
            f"{safe_url(url)} answers without a password: give it one (docs/security.md)",
        )
    return Check("ok", "redis-auth", "Redis refuses connections without credentials")


def check_codex_bin(path: str | None, version_output: str | None) -> Check:
    if path is None:
        return Check("fail", "codex-bin", "not found: run scripts/install-codex.sh or set CODEX_BIN")
    if version_output is None:
        return Check("fail", "codex-bin", f"{path} does not run (`--version` failed)")
    match = _VERSION.search(version_output)
    version = match.group(1) if match else version_output.strip()[:60]
    if version != CODEX_VERSION:
        return Check("warn", "codex-bin", f"{path} is {version}, pinned {CODEX_VERSION}")
    return Check("ok", "codex-bin", f"{path} ({version})")


def check_sandbox(codex_found: bool, problem: str | None) -> Check:
    """Can the runner seal sessions (and the worker jobs) on this host?"""
    if not codex_found:
        return Check("fail", "sandbox", "not probed: no Codex CLI")
    if problem is not None:
        return Check(
            "fail",
            "sandbox",
            f"Codex's sandbox cannot start here ({problem}): the runner refuses sealed sessions and "
            "the worker refuses jobs; give the host user namespaces, or opt out with "
            "SEAL_SESSIONS=false / JOBS_UNSANDBOXED=true (docs/security.md)",
        )
    return Check("ok", "sandbox", "Codex's sandbox seals a command (bubblewrap + seccomp)")


def probe_sandbox(codex: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="cb-doctor-") as scratch:
        return codex_sandbox.probe(codex, Path(scratch) / "probe" / "work", Path(scratch) / "home")


def check_codex_auth(
    api_key_set: bool, auth_json_path: Path | None, auth_json_exists: bool, home_auth: Path, home_exists: bool
) -> Check:
    if api_key_set:
        return Check("ok", "codex-auth", "OPENAI_API_KEY is set")
    if auth_json_path is not None:
        if auth_json_exists:
            return Check("ok", "codex-auth", f"CODEX_AUTH_JSON_PATH {auth_json_path}")
        return Check("fail", "codex-auth", f"CODEX_AUTH_JSON_PATH {auth_json_path} does not exist")
    if home_exists:
        return Check("ok", "codex-auth", f"{home_auth}")
    detail = f"no OPENAI_API_KEY, no CODEX_AUTH_JSON_PATH, no {home_auth}: Codex cannot log in"
    return Check("fail", "codex-auth", detail)


def check_pair(
    name: str, first: tuple[str, str | None], second: tuple[str, str | None], shapes: dict[str, str]
) -> Check:
    """Both settings → ok; neither → warn (that ingress stays disabled); one → fail."""
    (first_name, first_value), (second_name, second_value) = first, second
    if not first_value and not second_value:
        return Check("warn", name, f"disabled: {first_name} and {second_name} not set")
    missing = [n for n, v in ((first_name, first_value), (second_name, second_value)) if not v]
    if missing:
        return Check("fail", name, f"{missing[0]} not set (the other one is): {name} cannot connect")
    for var, value in ((first_name, first_value), (second_name, second_value)):
        prefix = shapes.get(var)
        if prefix and value and not value.startswith(prefix):
            return Check("warn", name, f"{var} does not start with {prefix}")
    return Check("ok", name, f"{first_name} and {second_name} set")


def check_discord(token: str | None) -> Check:
    """One token; a bot token is three dot-separated parts (id, timestamp, HMAC)."""
    if not token:
        return Check("warn", "discord", "disabled: DISCORD_BOT_TOKEN not set")
    if token.count(".") != 2:
        return Check("warn", "discord", "DISCORD_BOT_TOKEN does not look like a bot token (three parts)")
    intent = "the app needs the Message Content intent: docs/discord-setup.md"
    return Check("ok", "discord", f"DISCORD_BOT_TOKEN set ({intent})")


def check_web_chat(chat_url: str, admin_token_set: bool) -> Check:
    """The web chat needs no platform app: it is live whenever the broker runs."""
    sign_in = (
        "the admin token" if admin_token_set else "the one-time link `up` prints (it makes the admin token)"
    )
    return Check("ok", "web", f"web chat on {chat_url}: sign in with {sign_in}")


def check_data_root(path: Path, error: str | None, free_bytes: int | None) -> Check:
    if error is not None:
        return Check("fail", "data-root", f"{path} not writable: {error}")
    free = f" ({free_bytes / 1e9:.1f} GB free)" if free_bytes is not None else ""
    return Check("ok", "data-root", f"{path} writable{free}")


# ---- I/O -------------------------------------------------------------------------------------


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None


def probe_redis(url: str) -> str | None:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def probe_anonymous(url: str) -> bool | None:
    """True when the URL's server answers PING to a connection that sends no credentials."""
    parts = urlsplit(url)
    anonymous = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    client = Redis.from_url(anonymous, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis_errors.AuthenticationError:
        return False
    except redis_errors.ResponseError as exc:  # NOAUTH / NOPERM spelled as a plain error reply
        return False if "NOAUTH" in str(exc) or "NOPERM" in str(exc) else None
    except Exception:
        return None
    finally:
        client.close()


def probe_version(path: str) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def probe_data_root(path: Path) -> tuple[str | None, int | None]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".doctor-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
        return None, shutil.disk_usage(path).free
    except OSError as exc:
        return str(exc), None


def gather(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    url, source = embedded_redis.resolve_redis_url(settings)
    if "redis_url" not in settings.model_fields_set and embedded_redis.read_state(settings.data_root) is None:
        server = embedded_redis.find_redis_server(settings.redis_server_bin)
        checks.append(check_redis(None, source, None, server))
        auth = check_redis_auth(None, None)
    else:
        error = probe_redis(url)
        checks.append(check_redis(url, source, error, None))
        auth = check_redis_auth(url, probe_anonymous(url) if error is None else None)
    if auth is not None:
        checks.append(auth)

    codex = find_codex_bin(settings.codex_bin)
    checks.append(check_codex_bin(codex, probe_version(codex) if codex else None))
    checks.append(check_sandbox(codex is not None, probe_sandbox(codex) if codex else None))

    home = settings.codex_home or codex_home(settings.data_root)
    auth_path = settings.codex_auth_json_path
    checks.append(
        check_codex_auth(
            api_key_set=bool(_secret(settings.openai_api_key)),
            auth_json_path=auth_path,
            auth_json_exists=bool(auth_path and auth_path.is_file()),
            home_auth=home / "auth.json",
            home_exists=(home / "auth.json").is_file(),
        )
    )
    checks.append(
        check_pair(
            "slack",
            ("SLACK_APP_TOKEN", _secret(settings.slack_app_token)),
            ("SLACK_BOT_TOKEN", _secret(settings.slack_bot_token)),
            {"SLACK_APP_TOKEN": "xapp-", "SLACK_BOT_TOKEN": "xoxb-"},
        )
    )
    checks.append(
        check_pair(
            "feishu",
            ("FEISHU_APP_ID", settings.feishu_app_id),
            ("FEISHU_APP_SECRET", _secret(settings.feishu_app_secret)),
            {},
        )
    )
    checks.append(check_discord(_secret(settings.discord_bot_token)))
    checks.append(check_web_chat(web_chat_url(), bool(_secret(settings.broker_admin_token))))
    error, free = probe_data_root(settings.data_root)
    checks.append(check_data_root(settings.data_root, error, free))
    return checks


def web_chat_url() -> str:
    return load_settings(WebSettings).chat_url


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0

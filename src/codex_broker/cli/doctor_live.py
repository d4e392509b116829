"""`codex-broker doctor --live`: do the credentials actually work, not just exist?

Slack: `auth.test` with the bot token, its granted scopes (the `x-oauth-scopes` header) against
deploy/slack-app-manifest.yaml, and `apps.connections.open` with the app token (what Socket Mode
asks first; no websocket is opened, so no event is ever routed to the doctor). Feishu: a tenant
access token and the bot's info. Codex: each auth profile's account, asked of the app-server
(libs.codex_account). Secrets only ever show as set / missing; platform answers are reported by
their error codes, never echoed whole.

The `check_*` functions are pure verdicts; `gather_live` does the I/O with the same SDK clients
and base URLs the ingresses use (SLACK_API_URL, FEISHU_DOMAIN), so the fakes stand in for tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import proxy_bypass

import lark_oapi as lark
from redis.asyncio import Redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from codex_broker.cli.config import Settings
from codex_broker.cli.doctor import Check
from codex_broker.ingress_feishu.config import Settings as FeishuSettings
from codex_broker.ingress_slack.config import Settings as SlackSettings
from codex_broker.libs.codex_account import AccountFacts, read_account
from codex_broker.libs.codex_bin import find_codex_bin, project_root
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import codex_home

MANIFEST = Path("deploy") / "slack-app-manifest.yaml"
MANIFEST_PATH = project_root() / MANIFEST
TIMEOUT_S = 15.0
_SCOPE = re.compile(r"^\s*-\s*([a-z_:.]+)")


# ---- pure verdicts --------------------------------------------------------------------------


def manifest_bot_scopes(text: str) -> list[str]:
    """The `oauth_config.scopes.bot` list of a Slack app manifest (the small YAML subset ours
    uses: a block list under `bot:`, comments allowed)."""
    scopes: list[str] = []
    indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if indent is None:
            if stripped == "bot:":
                indent = len(line) - len(line.lstrip())
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent:
            break
        match = _SCOPE.match(line)
        if match:
            scopes.append(match.group(1))
    return scopes


def check_slack_auth(token_set: bool, answer: dict[str, Any] | None, error: str | None) -> Check:
    if not token_set:
        return Check("warn", "slack-auth", "SLACK_BOT_TOKEN missing: Slack not checked")
    if error is not None or answer is None:
        return Check("fail", "slack-auth", f"SLACK_BOT_TOKEN set, auth.test refused it: {error}")
    return Check(
        "ok",
        "slack-auth",
        f"SLACK_BOT_TOKEN set: bot {answer.get('user')} ({answer.get('user_id')}) in {answer.get('team')}",
    )


def check_slack_scopes(granted: Iterable[str] | None, wanted: list[str] | None) -> Check:
    if wanted is None:
        return Check("warn", "slack-scopes", f"{MANIFEST} not found: granted scopes not compared")
    if granted is None:
        return Check("warn", "slack-scopes", "Slack sent no x-oauth-scopes header: scopes not compared")
    have = set(granted)
    missing = [s for s in wanted if s not in have]
    if missing:
        return Check(
            "fail",
            "slack-scopes",
            f"missing {', '.join(missing)} (the manifest asks for them; reinstall the app)",
        )
    extra = sorted(have - set(wanted))
    if extra:
        return Check(
            "warn", "slack-scopes", f"all {len(wanted)} manifest scopes; also granted {', '.join(extra)}"
        )
    return Check("ok", "slack-scopes", f"all {len(wanted)} scopes of the manifest granted")


def check_socket_mode(token_set: bool, url: str | None, error: str | None) -> Check:
    if not token_set:
        return Check("warn", "slack-socket", "SLACK_APP_TOKEN missing: Socket Mode not checked")
    if error is not None or not url:
        return Check("fail", "slack-socket", f"SLACK_APP_TOKEN set, apps.connections.open refused: {error}")
    return Check("ok", "slack-socket", "SLACK_APP_TOKEN set: Socket Mode hands out a websocket URL")


def check_feishu_token(configured: bool, error: str | None) -> Check:
    if not configured:
        return Check("warn", "feishu-token", "FEISHU_APP_ID / FEISHU_APP_SECRET missing: Feishu not checked")
    if error is not None:
        return Check("fail", "feishu-token", f"FEISHU_APP_SECRET set, no tenant access token: {error}")
    return Check("ok", "feishu-token", "FEISHU_APP_ID and FEISHU_APP_SECRET set: tenant access token issued")


def check_feishu_bot(bot: dict[str, Any] | None, error: str | None) -> Check:
    if error is not None or not bot or not bot.get("open_id"):
        return Check(
            "fail", "feishu-bot", f"bot info unavailable: {error or 'no open_id'} (is the bot enabled?)"
        )
    return Check("ok", "feishu-bot", f"bot {bot.get('app_name') or '?'} ({bot['open_id']})")


def check_codex_account(facts: AccountFacts) -> Check:
    name = "codex-account"
    if not facts.ok:
        return Check("fail", name, f"profile {facts.profile}: {facts.error}")
    parts = [facts.who or facts.kind or "?"]
    if facts.plan:
        parts.append(f"plan {facts.plan}")
    if facts.rate_limits:
        parts.append(f"rate limits: {facts.rate_limits}")
    return Check("ok", name, f"profile {facts.profile}: {'; '.join(parts)}")


# ---- I/O -----------------------------------------------------------------------------------


def _secret(value: Any) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter is not None else value or "")


def _slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return f"{type(exc).__name__}: {exc}"[:200]


def read_manifest_scopes(manifest: Path) -> list[str] | None:
    return manifest_bot_scopes(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None


def slack_client(base_url: str, token: str | None = None) -> AsyncWebClient:
    """slack_sdk takes HTTP(S)_PROXY from the environment but ignores NO_PROXY: honour it here,
    so an API URL the operator exempted (a loopback fake, an internal gateway) is reached directly."""
    client = AsyncWebClient(token=token, base_url=base_url, timeout=int(TIMEOUT_S))
    if proxy_bypass(urlsplit(base_url).hostname or ""):
        client.proxy = None
    return client


async def slack_checks(settings: SlackSettings, wanted: list[str] | None) -> list[Check]:
    bot, app = _secret(settings.slack_bot_token), _secret(settings.slack_app_token)
    checks: list[Check] = []
    if bot:
        client = slack_client(settings.slack_api_url, bot)
        try:
            answer = await client.auth_test()
            checks.append(
                check_slack_auth(True, dict(answer.data) if isinstance(answer.data, dict) else {}, None)
            )
            header = next((v for k, v in answer.headers.items() if k.lower() == "x-oauth-scopes"), None)
            granted = [s.strip() for s in str(header).split(",") if s.strip()] if header is not None else None
            checks.append(check_slack_scopes(granted, wanted))
        except Exception as exc:  # every failure is a verdict, never a traceback
            checks.append(check_slack_auth(True, None, _slack_error(exc)))
    else:
        checks.append(check_slack_auth(False, None, None))
    url, error = None, None
    if app:
        client = slack_client(settings.slack_api_url)
        try:
            url = (await client.apps_connections_open(app_token=app)).get("url")
        except Exception as exc:
            error = _slack_error(exc)
    checks.append(check_socket_mode(bool(app), url, error))
    return checks


def _feishu_body(response: Any) -> dict[str, Any]:
    content = getattr(getattr(response, "raw", None), "content", None)
    try:
        body = json.loads(content) if content else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _feishu_error(body: dict[str, Any]) -> str:
    return f"code {body.get('code', '?')}: {str(body.get('msg') or 'no answer')[:120]}"


async def feishu_checks(settings: FeishuSettings) -> list[Check]:
    secret = _secret(settings.feishu_app_secret)
    if not (settings.feishu_app_id and secret):
        return [check_feishu_token(False, None)]
    # the token is asked for explicitly (not through the SDK's process-wide cache keyed by app id)
    client = (
        lark.Client.builder()
        .app_id(settings.feishu_app_id)
        .app_secret(secret)
        .domain(settings.feishu_domain)
        .timeout(TIMEOUT_S)
        .log_level(lark.LogLevel.ERROR)
        .build()
    )
    token_request = (
        lark.BaseRequest.builder()
        .http_method(lark.HttpMethod.POST)
        .uri("/open-apis/auth/v3/tenant_access_token/internal")
        .body({"app_id": settings.feishu_app_id, "app_secret": secret})
        .build()
    )
    try:
        body = _feishu_body(await client.arequest(token_request))
    except Exception as exc:
        return [check_feishu_token(True, f"{type(exc).__name__}: {exc}"[:200])]
    token = body.get("tenant_access_token")
    if body.get("code") != 0 or not token:
        return [
            check_feishu_token(True, _feishu_error(body)),
            Check("fail", "feishu-bot", "not asked: no token"),
        ]
    bot_request = (
        lark.BaseRequest.builder()
        .http_method(lark.HttpMethod.GET)
        .uri("/open-apis/bot/v3/info")
        .token_types({lark.AccessTokenType.TENANT})
        .build()
    )
    option = lark.RequestOption.builder().tenant_access_token(str(token)).build()
    try:
        info = _feishu_body(await client.arequest(bot_request, option))
    except Exception as exc:
        return [check_feishu_token(True, None), check_feishu_bot(None, f"{type(exc).__name__}: {exc}"[:200])]
    error = None if info.get("code") == 0 else _feishu_error(info)
    return [check_feishu_token(True, None), check_feishu_bot(info.get("bot"), error)]


async def profile_homes(settings: Settings, redis: Redis | None, keys: Keys) -> dict[str, Path]:
    """Profile name → CODEX_HOME: the default one, and every profile the admin saved (listed in
    Redis when it answers, else found on disk)."""
    homes = {"default": settings.codex_home or codex_home(settings.data_root)}
    names: list[str] = []
    if redis is not None:
        try:
            listed = await redis.hkeys(keys.auth_profiles)  # type: ignore[misc]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in listed]
        except Exception:
            names = []
    for name in sorted(names):
        homes.setdefault(name, codex_home(settings.data_root, name))
    if not names:  # the directories are named by safe_name(profile): shown as they are
        root = Path(settings.data_root) / "codex-homes"
        for home in sorted(root.iterdir()) if root.is_dir() else []:
            if home.is_dir():
                homes.setdefault(home.name, home)
    return homes


def codex_env(settings: Settings) -> dict[str, str]:
    """The child's environment: the operator's, plus the API key the runner would hand Codex."""
    env = dict(os.environ)
    key = _secret(settings.openai_api_key)
    if key:
        env["OPENAI_API_KEY"] = key
    return env


async def codex_checks(settings: Settings, homes: dict[str, Path]) -> list[Check]:
    codex = find_codex_bin(settings.codex_bin)
    if codex is None:
        return [
            Check("fail", "codex-account", "not asked: no Codex CLI (scripts/install-codex.sh or CODEX_BIN)")
        ]
    env = codex_env(settings)
    found = await asyncio.gather(
        *(read_account(codex, home, name, env=env, timeout_s=TIMEOUT_S * 2) for name, home in homes.items())
    )
    return [check_codex_account(f) for f in found]


@dataclass(frozen=True)
class LiveInputs:
    settings: Settings
    slack: SlackSettings
    feishu: FeishuSettings
    wanted_scopes: list[str] | None  # the manifest's bot scopes (None: no manifest found)


async def gather_live(inputs: LiveInputs, redis: Redis | None, keys: Keys) -> list[Check]:
    slack, feishu, homes = await asyncio.gather(
        slack_checks(inputs.slack, inputs.wanted_scopes),
        feishu_checks(inputs.feishu),
        profile_homes(inputs.settings, redis, keys),
    )
    return [*slack, *feishu, *await codex_checks(inputs.settings, homes)]

"""Which account one CODEX_HOME (auth profile) logs Codex in as: asked of `codex app-server`
itself (`account/read`, and `account/rateLimits/read` for a ChatGPT login), so the answer is
what a turn would get — used by `codex-broker doctor --live` and the admin page's profiles view.

A short-lived app-server per question: this is an operator's check, not the hot path. Only
facts leave here (account type, e-mail, plan, rate-limit windows), never a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codex_broker.libs.codex_bin import CODEX_SQLITE_DIR, native_codex_bin, sqlite_home_override

CLIENT = {"name": "codex-broker-doctor", "version": "1"}
OPENAI_API_BASE = "https://api.openai.com/v1"
STREAM_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class AccountFacts:
    profile: str
    ok: bool
    kind: str | None = None  # apiKey, chatgpt, amazonBedrock, gcp
    who: str | None = None
    plan: str | None = None
    rate_limits: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RpcFailed(Exception):
    pass


def _window(name: str, window: Any) -> str | None:
    if not isinstance(window, dict) or "usedPercent" not in window:
        return None
    minutes = window.get("windowDurationMins")
    span = f" of {minutes // 60} h" if isinstance(minutes, int) and minutes >= 60 else ""
    return f"{name} {window['usedPercent']}% used{span}"


def describe_rate_limits(result: dict[str, Any]) -> str:
    """`account/rateLimits/read` → one line (pure)."""
    snapshot = result.get("rateLimits") or {}
    parts = [_window(n, snapshot.get(n)) for n in ("primary", "secondary")]
    shown = [p for p in parts if p]
    reached = snapshot.get("rateLimitReachedType")
    if reached:
        shown.append(f"limit reached ({reached})")
    return ", ".join(shown) or "no limits reported"


def facts_from_account(profile: str, result: dict[str, Any]) -> AccountFacts:
    """`account/read` → the facts (pure). No account while OpenAI auth is required: not logged in."""
    account = result.get("account")
    if not isinstance(account, dict):
        if result.get("requiresOpenaiAuth"):
            return AccountFacts(profile, ok=False, error="not logged in (no API key or ChatGPT login)")
        return AccountFacts(profile, ok=True, kind="none", who="no OpenAI login needed (custom provider)")
    kind = str(account.get("type") or "unknown")
    if kind == "chatgpt":
        who = account.get("email") or result.get("userId") or "ChatGPT account"
        workspace = account.get("workspaceName")
        return AccountFacts(
            profile,
            ok=True,
            kind=kind,
            who=f"{who} ({workspace})" if workspace else str(who),
            plan=account.get("planType"),
        )
    if kind == "apiKey":
        return AccountFacts(profile, ok=True, kind=kind, who="OpenAI API key", plan="API (pay as you go)")
    return AccountFacts(profile, ok=True, kind=kind, who=kind)


class _Client:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        await self.send({"id": wanted, "method": method, "params": params})
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise _RpcFailed(f"app-server exited during {method}")
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("id") != wanted or "method" in message:
                continue  # a notification or a server request: not our answer
            if "error" in message:
                error = message["error"] or {}
                raise _RpcFailed(f"{method}: {error.get('message') or error}")
            result = message.get("result")
            return result if isinstance(result, dict) else {}


async def _ask(client: _Client, profile: str) -> AccountFacts:
    await client.request("initialize", {"clientInfo": CLIENT})
    await client.send({"method": "initialized"})
    facts = facts_from_account(profile, await client.request("account/read", {"refreshToken": False}))
    if facts.ok and facts.kind == "chatgpt":
        try:
            limits = describe_rate_limits(await client.request("account/rateLimits/read", {}))
        except _RpcFailed as exc:
            return AccountFacts(**{**facts.as_dict(), "ok": False, "error": f"rate limits: {exc}"})
        return AccountFacts(**{**facts.as_dict(), "rate_limits": limits})
    return facts


def api_key_of(home: Path, env: dict[str, str]) -> str | None:
    """The key Codex would send: auth.json's OPENAI_API_KEY, else the environment's."""
    try:
        document = json.loads((home / "auth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = {}
    key = document.get("OPENAI_API_KEY") if isinstance(document, dict) else None
    return str(key) if key else env.get("OPENAI_API_KEY") or None


def probe_api_key(api_base: str, key: str, timeout_s: float) -> str | None:
    """GET {api_base}/models with the key (lists models, costs nothing): None when accepted, else
    why not. account/read only says an API key is configured; this says the API takes it."""
    request = urllib.request.Request(
        f"{api_base.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"}
    )
    # an opener of its own: urlopen's global one keeps the proxy settings of its first call forever
    opener = urllib.request.build_opener()
    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read(1024)
        return None
    except urllib.error.HTTPError as exc:
        return f"the API refused the key (HTTP {exc.code})"
    except (urllib.error.URLError, OSError) as exc:
        return f"the API at {api_base} is unreachable: {getattr(exc, 'reason', exc)}"


async def _with_key_check(
    facts: AccountFacts, home: Path, env: dict[str, str], timeout_s: float
) -> AccountFacts:
    key = api_key_of(home, env) if facts.ok and facts.kind == "apiKey" else None
    if key is None:
        return facts
    api_base = env.get("OPENAI_BASE_URL") or OPENAI_API_BASE
    problem = await asyncio.to_thread(probe_api_key, api_base, key, timeout_s)
    if problem is not None:
        return AccountFacts(**{**facts.as_dict(), "ok": False, "error": problem})
    return AccountFacts(**{**facts.as_dict(), "who": f"OpenAI API key (accepted by {api_base})"})


async def read_account(
    codex_bin: str, home: Path, profile: str, *, env: dict[str, str] | None = None, timeout_s: float = 30.0
) -> AccountFacts:
    """Ask a fresh app-server with CODEX_HOME=`home`; any failure is a fact, not an exception."""
    child_env = {**(env if env is not None else os.environ), "CODEX_HOME": str(home)}
    if not (home / "auth.json").is_file() and not child_env.get("OPENAI_API_KEY"):
        return AccountFacts(profile, ok=False, error=f"no auth.json in {home.name}/ and no OPENAI_API_KEY")
    try:
        # its databases where the runner keeps them: none left at CODEX_HOME's top for the seal
        (home / CODEX_SQLITE_DIR).mkdir(mode=0o700, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            native_codex_bin(codex_bin),
            "app-server",
            "-c",
            sqlite_home_override(home),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_env,
            cwd=str(home),
            limit=STREAM_LIMIT,
        )
    except OSError as exc:
        return AccountFacts(profile, ok=False, error=f"cannot start codex: {exc.strerror or exc}")
    try:
        facts = await asyncio.wait_for(_ask(_Client(process), profile), timeout=timeout_s)
    except TimeoutError:
        return AccountFacts(profile, ok=False, error=f"app-server did not answer within {timeout_s:.0f} s")
    except (_RpcFailed, OSError) as exc:
        return AccountFacts(profile, ok=False, error=str(exc)[:300])
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), timeout=10)
    return await _with_key_check(facts, home, child_env, timeout_s)

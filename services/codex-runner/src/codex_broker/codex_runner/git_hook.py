"""The commit-msg hook's logic: ask the broker for the thread's co-authors, append trailers.

Run by the installed `commit-msg` shell hook as `python -I -m codex_broker.codex_runner.git_hook
<message file>` with the repository's worktree as cwd. Standard library only, and it never
fails a commit: every error ends in "message unchanged", exit status 0.

How it finds its session: it walks up from the repository to the first directory holding a
`.broker-session` file whose `workspace/` directory contains the repository — the layout
`DATA_ROOT/sessions/<safe key>/{.broker-session, workspace/}` written by the broker (see
`codex_broker.libs.hook_token`). Failing that, a `BROKER_SESSION_TOKEN` in the environment (the
session's capability token, if Codex exported it) is used. The broker's answer is bounded by
`codex-broker.hookTimeout` (git config, default 5 s); when some participants have no GitHub
author the broker itself prompts them in the thread — the hook does not wait for the answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOOK_FILE = ".broker-session"
RESOLVE_PATH = "/git/coauthors/resolve"
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 30.0
MAX_LEVELS = 64
MAX_TRAILERS = 50
TRAILER = re.compile(r"^Co-authored-by: [^\r\n<>]{1,100} <[^\r\n<>@\s]{1,64}@[^\r\n<>\s]{1,190}>$")
_COAUTHOR_LINE = re.compile(r"^co-authored-by:\s*.*<([^<>]+)>\s*$", re.IGNORECASE)
_IDENT_EMAIL = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class Credentials:
    token: str
    session_key: str | None = None


# ---- pure parts -------------------------------------------------------------------------------


def find_hook_file(start: Path) -> Path | None:
    """The session's hook file above `start`, if `start` is inside that session's workspace."""
    start = start.resolve()
    for level, directory in enumerate([start, *start.parents]):
        if level >= MAX_LEVELS:
            break
        candidate = directory / HOOK_FILE
        if candidate.is_file() and _inside(start, directory / "workspace"):
            return candidate
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def parse_hook_file(text: str) -> Credentials | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data["token"]:
        return None
    session_key = data.get("session_key")
    return Credentials(token=data["token"], session_key=session_key if isinstance(session_key, str) else None)


def existing_coauthor_emails(message: str) -> set[str]:
    """Emails of the Co-authored-by lines already in the message (lower case)."""
    found = set()
    for line in message.splitlines():
        match = _COAUTHOR_LINE.match(line.strip())
        if match:
            found.add(match.group(1).strip().lower())
    return found


def trailers_to_add(offered: object, message: str, author_email: str | None) -> list[str]:
    """The broker's trailers that are well-formed and not yet credited (nor the author)."""
    if not isinstance(offered, list):
        return []
    skip = existing_coauthor_emails(message)
    if author_email:
        skip.add(author_email.lower())
    chosen: list[str] = []
    for trailer in offered[:MAX_TRAILERS]:
        if not isinstance(trailer, str) or not TRAILER.match(trailer):
            continue
        email = trailer[trailer.rfind("<") + 1 : -1].lower()
        if email in skip:
            continue
        skip.add(email)
        chosen.append(trailer)
    return chosen


def has_content(message: str) -> bool:
    return any(line.strip() and not line.startswith("#") for line in message.splitlines())


def clamp_timeout(raw: str | None) -> float:
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return min(max(value, 0.5), MAX_TIMEOUT_S)


# ---- I/O --------------------------------------------------------------------------------------


def _git(*args: str, timeout: float = 5.0) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def credentials(cwd: Path) -> Credentials | None:
    path = find_hook_file(cwd)
    if path is not None:
        try:
            found = parse_hook_file(path.read_text(encoding="utf-8"))
        except OSError:
            found = None
        if found is not None:
            return found
    token = os.environ.get("BROKER_SESSION_TOKEN", "").strip()
    return Credentials(token=token) if token else None


def broker_opener(env: Mapping[str, str]) -> urllib.request.OpenerDirector:
    """How to reach the broker. Inside a sealed session's network the only way out is Codex's
    managed proxy (it sets CODEX_NETWORK_PROXY_ACTIVE and HTTP_PROXY), whatever NO_PROXY says;
    elsewhere the broker is local and never reached through the child's HTTP(S)_PROXY."""
    proxy = env.get("HTTP_PROXY") or env.get("http_proxy")
    if env.get("CODEX_NETWORK_PROXY_ACTIVE") == "1" and proxy:
        return urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ask_broker(api_base: str, creds: Credentials, timeout_s: float) -> dict | None:
    """POST /git/coauthors/resolve; None on any failure (unreachable, slow, refused, bad JSON)."""
    body = json.dumps(
        {"prompt": True, "sessionKey": creds.session_key} if creds.session_key else {"prompt": True}
    )
    request = urllib.request.Request(
        api_base.rstrip("/") + RESOLVE_PATH,
        data=body.encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {creds.token}",
            "Content-Type": "application/json",
            "User-Agent": "codex-broker-commit-msg",
        },
    )
    try:
        with broker_opener(os.environ).open(request, timeout=timeout_s) as response:
            data = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, OSError, ValueError, TimeoutError):
        return None
    return data if isinstance(data, dict) and data.get("ok") is True else None


def author_email() -> str | None:
    ident = _git("var", "GIT_AUTHOR_IDENT")
    match = _IDENT_EMAIL.search(ident or "")
    return match.group(1) if match else None


def append_trailers(message_file: Path, trailers: list[str]) -> bool:
    args = ["interpret-trailers", "--in-place", "--if-exists", "addIfDifferent"]
    for trailer in trailers:
        args += ["--trailer", trailer]
    return _git(*args, str(message_file)) is not None


def run(message_file: Path) -> str:
    """What happened, in a few words (printed to stderr by main)."""
    creds = credentials(Path.cwd())
    if creds is None:
        return "no session"
    api_base = os.environ.get("BROKER_API_BASE") or _git("config", "--get", "codex-broker.apiBase")
    if not api_base:
        return "no broker address"
    message = message_file.read_text(encoding="utf-8", errors="replace")
    if not has_content(message):
        return "empty message"
    timeout_s = clamp_timeout(_git("config", "--get", "codex-broker.hookTimeout"))
    answer = ask_broker(api_base, creds, timeout_s)
    if answer is None:
        return "broker unavailable; message unchanged"
    trailers = trailers_to_add(answer.get("trailers"), message, author_email())
    if trailers and not append_trailers(message_file, trailers):
        return "git interpret-trailers failed; message unchanged"
    note = f"{len(trailers)} co-author trailer(s) added"
    prompted = answer.get("prompted")
    if isinstance(prompted, list) and prompted:
        note += f"; asked {len(prompted)} participant(s) without a GitHub author in the thread"
    return note


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return 0
    try:
        note = run(Path(args[0]))
    except Exception as exc:  # the hook never fails a commit
        note = f"skipped ({type(exc).__name__})"
    print(f"codex-broker commit-msg: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

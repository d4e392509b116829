"""What a Codex app-server child gets: its CODEX_HOME, command line and environment.

Least privilege: the child environment is built from scratch (PATH, HOME, CODEX_HOME, the
profile's Codex auth, BROKER_API_BASE, proxy variables) — never copied from the runner's own
environment, which may hold other secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from codex_broker.codex_runner import git_identity
from codex_broker.codex_runner.config import Settings
from codex_broker.libs import paths, sealing
from codex_broker.libs.codex_bin import CODEX_SQLITE_DIR, sqlite_home_override
from codex_broker.libs.codex_bin import native_codex_bin as native_codex_bin  # moved to libs (jobs use it)

log = logging.getLogger(__name__)

TEAM_ENTRIES = ("AGENT.md", "AGENTS.md", "skills", "config.toml")
# Features that reach out to ChatGPT apps, connectors and plugin marketplaces.
APPS_FEATURES = ("apps", "plugins", "remote_plugin")
# Defaults before the operator's CODEX_CONFIG_OVERRIDES (a later -c wins, so any can be turned back).
# shell_snapshot: for every new thread Codex spawns a login shell and a dozen helper processes to
# snapshot its environment (~30-45 ms CPU); on a small machine that burst slows the turns running
# beside it (+20 ms broker overhead per new thread in bench/latency_bench.py). The runner builds
# the shell's environment itself, so commands run the same without it (a login shell per command).
# project_root_markers=[]: the session's workspace (the thread's cwd) is its project root. With
# the default (".git") Codex walks from the cwd up to `/` looking for a marker and, on every turn,
# for AGENTS.md and project config in each directory on the way; under a session's permission
# profile each of those file operations is one sandboxed helper (codex-linux-sandbox + bubblewrap),
# ~15 of them per turn: most of what sealing added before the first model request (docs/
# benchmarks.md). Above the workspace there is nothing of the session's anyway (its parents are
# the broker's DATA_ROOT), so the workspace's own AGENTS.md and .codex/ are still read and
# nothing is read from outside it.
ALWAYS_OVERRIDES = (
    "analytics.enabled=false",
    "check_for_update_on_startup=false",
    "features.shell_snapshot=false",
    "project_root_markers=[]",
)
# Codex's own SQLite databases (thread state, logs, goals, memories, queue, thread history: 18 files
# with their -wal/-shm) live in one directory of the profile's CODEX_HOME (`sqlite_home`) instead of
# its top level. The seal hides CODEX_HOME entry by entry (libs/sealing.py), and bubblewrap hides
# each hidden file with a mount of its own, built again for every sandboxed command and for every
# file operation Codex makes for itself under the profile: 18 mounts become one, hidden the same
# way (the directory is no shared entry), and a database Codex creates after a thread started is
# covered too. Measured: ~20 ms less per sandboxed operation (docs/benchmarks.md).
SQLITE_DIR = CODEX_SQLITE_DIR
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Codex's shell never needs the model API key, and any command the model runs could read and send
# it: Codex's shell_environment_policy drops it (on top of the profile's own exclude list).
SHELL_EXCLUDED_ENV = ("OPENAI_API_KEY",)


@dataclass(frozen=True)
class Profile:
    """A prepared auth profile: where its Codex state lives and the API key it runs with."""

    name: str
    codex_home: Path
    api_key: str | None


def prepare_profile(settings: Settings, name: str) -> Profile:
    """Create the profile's CODEX_HOME, link the shared team entries, install its auth."""
    data_root = settings.data_root.resolve()
    home = paths.codex_home(data_root, name).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    link_team_entries(paths.team_home(data_root), home)
    sealing.prepare_codex_home(home)
    (home / SQLITE_DIR).mkdir(mode=0o700, exist_ok=True)  # exists before any thread hides it
    git_identity.prepare_git_home(home, settings, api_base=settings.api_base, child_path=settings.path)
    if name == "default" and settings.codex_auth_json_path is not None:
        install_auth_json(settings.codex_auth_json_path, home)
    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if name != "default" or not api_key:
        api_key = auth_json_api_key(home) or (api_key if name == "default" else None)
    return Profile(name=name, codex_home=home, api_key=api_key)


def link_team_entries(team_home: Path, codex_home: Path) -> list[str]:
    """Symlink AGENT.md, AGENTS.md, skills/, config.toml from team-home where the profile has none.

    An entry the profile already has (an operator's own config.toml) is left alone.
    """
    linked = []
    for entry in TEAM_ENTRIES:
        source = team_home / entry
        target = codex_home / entry
        if not source.exists() or target.exists() or target.is_symlink():
            continue
        target.symlink_to(source.resolve())
        linked.append(entry)
    return linked


def install_auth_json(source: Path, codex_home: Path) -> None:
    target = codex_home / "auth.json"
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    tmp.replace(target)


def auth_json_api_key(codex_home: Path) -> str | None:
    """The API key inside a profile's auth.json (API-key logins store it as OPENAI_API_KEY)."""
    try:
        value = json.loads((codex_home / "auth.json").read_text(encoding="utf-8")).get("OPENAI_API_KEY")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def mcp_server_names(config_toml: Path) -> list[str]:
    try:
        config = tomllib.loads(config_toml.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    servers = config.get("mcp_servers")
    return sorted(servers) if isinstance(servers, dict) else []


def shell_env_excludes(config_toml: Path) -> list[str]:
    """The profile's `shell_environment_policy.exclude` patterns plus SHELL_EXCLUDED_ENV (a `-c`
    override replaces the whole list, so the operator's entries are carried over)."""
    try:
        policy = tomllib.loads(config_toml.read_text(encoding="utf-8")).get("shell_environment_policy")
    except (OSError, tomllib.TOMLDecodeError):
        policy = None
    existing = policy.get("exclude") if isinstance(policy, dict) else None
    patterns = [p for p in existing if isinstance(p, str)] if isinstance(existing, list) else []
    return [*patterns, *(name for name in SHELL_EXCLUDED_ENV if name not in patterns)]


def app_server_command(settings: Settings, codex_bin: str, profile: Profile) -> list[str]:
    command = [codex_bin, "app-server"]
    if settings.codex_disable_apps:
        for feature in APPS_FEATURES:
            command += ["--disable", feature]
    overrides = [*ALWAYS_OVERRIDES, sqlite_home_override(profile.codex_home)]
    if settings.codex_disable_mcp:
        for name in mcp_server_names(profile.codex_home / "config.toml"):
            if _SAFE_KEY.match(name):
                overrides.append(f"mcp_servers.{name}.enabled=false")
            else:
                log.warning("cannot disable MCP server with this name", extra={"server": name})
    excludes = shell_env_excludes(profile.codex_home / "config.toml")
    overrides.append(f"shell_environment_policy.exclude={json.dumps(excludes)}")
    overrides += settings.codex_config_overrides
    for override in overrides:
        command += ["-c", override]
    return command


def child_env(settings: Settings, profile: Profile) -> dict[str, str]:
    home = settings.home or settings.data_root
    env = {
        "PATH": settings.path,
        "HOME": str(Path(home).resolve()),
        "CODEX_HOME": str(profile.codex_home),
        "BROKER_API_BASE": settings.api_base,
    }
    if profile.api_key:
        env["OPENAI_API_KEY"] = profile.api_key
    proxies = {
        "HTTP_PROXY": settings.http_proxy,
        "HTTPS_PROXY": settings.https_proxy,
        "ALL_PROXY": settings.all_proxy,
        "NO_PROXY": settings.no_proxy,
    }
    for name, value in proxies.items():
        if value:
            env[name] = value
            env[name.lower()] = value
    env.update(git_identity.git_child_env(settings, profile.codex_home, api_base=settings.api_base))
    return env

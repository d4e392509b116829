"""The permission profile that seals one session's Codex commands inside its own room.

Codex 0.169 enforces a user-defined permission profile (`[permissions.<id>]`, selected by
`default_permissions`) with its bundled bubblewrap and a seccomp filter, reads included. The
runner builds one per thread and passes it as `thread/start`'s per-thread `config`; the job
worker builds the same one per job for `codex sandbox`. Both build it from their own settings
and the session key; nothing of it comes from a stream entry but the workspace, which is
checked against the session (docs/security.md).

Measured rules the shape below follows: a `read` grant inside a denied tree is lost, a `write`
grant inside one works, and hiding the whole CODEX_HOME is fine for the sandbox itself but would
hide the git identity files the commit hook needs; so DATA_ROOT's private trees are denied one by
one and CODEX_HOME is denied entry by entry, keeping only what commands are meant to use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codex_broker.libs import paths

PROFILE_ID = "cb-session"
# DATA_ROOT trees no session may see: other sessions, logs, the embedded Redis's files, the
# secrets `up` generates (Redis password, admin token), upload copies and job directories. Codex
# homes (auth, config, rollouts) are handled apart: the session's own is hidden entry by entry,
# every other profile's whole.
PRIVATE_TREES = ("sessions", "logs", "redis", "secrets", "outbox", "jobs")
# What commands of a session use from their profile's CODEX_HOME: the git identity (config,
# commit hook, credential helper), the team's instructions and skills, Codex's own sandbox helper.
# (The runner's git_identity writes these; named here so the job worker shares them.)
GITCONFIG = "gitconfig"
HOOKS_DIR = "git-hooks"
HELPER_DIR = "git-bin"
CODEX_HOME_SHARED = (
    GITCONFIG,
    HOOKS_DIR,
    HELPER_DIR,
    "tmp",
    "AGENT.md",
    "AGENTS.md",
    "skills",
)
# Directories Codex fills later (rollouts, logs): created before any thread starts, since a
# profile is fixed at thread start and Codex's bubblewrap can only hide paths that exist.
CODEX_HOME_PRIVATE_DIRS = ("sessions", "archived_sessions", "log")


class WorkspaceRefused(Exception):
    """A run names a workspace inside DATA_ROOT that is not its own session's."""


def check_workspace(data_root: Path, session_key: str, workspace: str) -> Path:
    """The run's workspace, if the session may have it: its own session directory, the shared
    repos cache, or a directory outside DATA_ROOT (an admin's `/cd`)."""
    root = Path(data_root).resolve()
    path = Path(workspace).resolve()
    if not paths.is_within(path, root):
        return path
    allowed = (paths.session_dir(root, session_key), paths.repos_root(root))
    if any(paths.is_within(path, tree) for tree in allowed):
        return path
    raise WorkspaceRefused(f"workspace {workspace} belongs to another part of DATA_ROOT")


def prepare_codex_home(codex_home: Path) -> None:
    for name in CODEX_HOME_PRIVATE_DIRS:
        (codex_home / name).mkdir(mode=0o700, exist_ok=True)


def codex_home_denials(codex_home: Path, entries: list[str]) -> list[Path]:
    """Every existing entry of CODEX_HOME but the shared ones."""
    names = set(entries) | set(CODEX_HOME_PRIVATE_DIRS)
    return [codex_home / name for name in sorted(names - set(CODEX_HOME_SHARED))]


def _entries(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in directory.iterdir()]
    except OSError:
        return []


def _denial_target(entry: Path, team_home: Path) -> Path | None:
    """What to hide for a CODEX_HOME entry. bubblewrap mounts over a symlink's target: the team
    entries linked from team-home are shared anyway, another link's target is hidden itself."""
    if not entry.is_symlink():
        return entry
    target = entry.resolve()
    if not target.exists() or paths.is_within(target, team_home):
        return None
    return target


def codex_homes(data_root: Path) -> list[Path]:
    """Every profile's CODEX_HOME under DATA_ROOT (default and the others)."""
    others = paths.codex_home(data_root, "x").parent
    return [paths.codex_home(data_root), *(others / name for name in sorted(_entries(others)))]


def filesystem_rules(data_root: Path, session_key: str, workspace: Path, codex_home: Path) -> dict[str, str]:
    root = Path(data_root).resolve()
    own_home = codex_home.resolve()
    rules: dict[str, str] = {"/": "read"}
    for tree in PRIVATE_TREES:
        rules[str(root / tree)] = "none"
    for home in codex_homes(root):
        if home.resolve() != own_home and home.exists():
            rules[str(home)] = "none"
    for entry in codex_home_denials(own_home, _entries(own_home)):
        target = _denial_target(entry, paths.team_home(root))
        if target is not None:
            rules[str(target)] = "none"
    # The session's own directory: its workspace and the commit hook's token file beside it.
    rules[str(paths.session_dir(root, session_key))] = "write"
    rules.update(workspace_grants(workspace))
    return rules


def workspace_grants(workspace: Path) -> dict[str, str]:
    """The workspace writable, its own repository included: Codex keeps an existing top-level
    `.git` of a writable root read-only unless it is granted itself (measured: with the grant a
    commit works whether `.git` existed at thread start or was made later)."""
    return {str(workspace): "write", str(Path(workspace) / ".git"): "write"}


def network_rules(network_access: bool, allowed_hosts: Sequence[str]) -> dict[str, Any]:
    """Off: seccomp refuses every socket (AF_UNIX included). On: commands get a network
    namespace of their own whose only way out is Codex's managed proxy, which lets through the
    allow-listed hosts and nothing local or private that is not named (measured: direct
    connects to 127.0.0.1 are refused; the proxy answers 403 for an unlisted loopback address
    and blocks 169.254.169.254). The list names hosts, not ports: naming 127.0.0.1 would admit
    every service on it, so the broker API gets an address of its own (SESSION_API_HOST)."""
    if not network_access:
        return {"enabled": False}
    return {"enabled": True, "mode": "full", "domains": dict.fromkeys(allowed_hosts, "allow")}


def sealed_config(
    data_root: Path,
    session_key: str,
    workspace: Path,
    codex_home: Path,
    *,
    network_access: bool,
    allowed_hosts: Sequence[str] = (),
) -> dict[str, Any]:
    """`thread/start` / `thread/resume` config selecting the session's own permission profile.

    Features go in as dotted keys (`features.network_proxy`), each one alone: a `features` table
    in a thread's config replaces the app-server's whole `features` table, which silently turned
    the runner's `features.shell_snapshot=false` back on — a login shell and a dozen helpers per
    new thread, in the sandbox (docs/benchmarks.md)."""
    filesystem = filesystem_rules(data_root, session_key, workspace, codex_home)
    config = _profile_config(filesystem, network_access, allowed_hosts)
    for feature, on in config.pop("features", {}).items():
        config[f"features.{feature}"] = on
    return config


def _profile_config(
    filesystem: dict[str, str], network_access: bool, allowed_hosts: Sequence[str]
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "default_permissions": PROFILE_ID,
        "permissions": {
            PROFILE_ID: {"filesystem": filesystem, "network": network_rules(network_access, allowed_hosts)}
        },
    }
    if network_access:
        config["features"] = {"network_proxy": True}  # experimental in 0.169: off unless asked
    return config


def api_host(api_base: str) -> str | None:
    """The host commands must reach for the broker API (BROKER_API_BASE)."""
    return urlsplit(api_base).hostname


def allowed_hosts(api_base: str, operator_domains: Sequence[str]) -> list[str]:
    """The allow-list, from the service's own settings (never a stream entry): the broker API's
    host first, then NETWORK_ALLOWED_DOMAINS."""
    api = api_host(api_base)
    return [*([api] if api else []), *operator_domains]


def job_filesystem_rules(data_root: Path, session_key: str, workspace: Path, job_dir: Path) -> dict[str, str]:
    """The rules of one background job of a session: the session's own, with two differences.

    Every CODEX_HOME is hidden whole: a job gets no git identity from it, and the sandbox's own
    helper lives in the worker's home under `jobs/`. The job's directory (its script, its output)
    is granted `write` inside the denied `jobs/` tree, which works where a `read` grant would not.
    """
    root = Path(data_root).resolve()
    rules: dict[str, str] = {"/": "read"}
    for tree in PRIVATE_TREES:
        rules[str(root / tree)] = "none"
    for home in codex_homes(root):
        if home.exists():
            rules[str(home.resolve())] = "none"
    rules[str(paths.session_dir(root, session_key))] = "write"
    rules.update(workspace_grants(workspace))
    rules[str(Path(job_dir).resolve())] = "write"
    return rules


def job_config(
    data_root: Path,
    session_key: str,
    workspace: Path,
    job_dir: Path,
    *,
    network_access: bool,
    allowed_hosts: Sequence[str] = (),
) -> dict[str, Any]:
    """`codex sandbox` config selecting a job's permission profile (same shape as `sealed_config`)."""
    filesystem = job_filesystem_rules(data_root, session_key, workspace, job_dir)
    return _profile_config(filesystem, network_access, allowed_hosts)

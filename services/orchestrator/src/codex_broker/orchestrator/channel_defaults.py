"""Per-channel defaults and a thread's own picks (`-repo`, `-model`) → what a run runs with.

`resolve` is pure. Precedence, most specific first: an admin's `/config` or `/cd` for the
session, the thread's pick (only among the channel's allowed values), the channel's default,
the deployment's setting. Sandbox levels are not a user's pick: the channel's default applies
and the runner still refuses a mode outside its UNSEALED_SANDBOXES.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codex_broker.libs import paths
from codex_broker.libs.channel_defaults import ChannelDefaults, repo_dir

PICK_MODEL = "pick_model"  # session hash fields holding the thread's own picks
PICK_REPO = "pick_repo"


@dataclass(frozen=True)
class Deployment:
    data_root: Path
    model: str | None
    sandbox: str


@dataclass(frozen=True)
class RunParams:
    workspace: str
    repo: str | None  # the repo of the repos cache the workspace is, if any
    repo_url: str | None  # clone from here when the workspace does not exist yet
    model: str | None
    sandbox: str


def _own_workspace(session: dict[str, str], session_key: str, data_root: Path) -> bool:
    """The session still works in its own directory (no admin `/cd` moved it)."""
    own = paths.session_workspace(data_root, session_key)
    return not session.get("workspace") or Path(session["workspace"]) == own


def _repo(defaults: ChannelDefaults | None, session: dict[str, str]) -> str | None:
    if defaults is None:
        return None
    picked = session.get(PICK_REPO)
    if picked and picked in defaults.allowed_repos():
        return picked
    return defaults.repo


def _model(defaults: ChannelDefaults | None, session: dict[str, str], deployment: Deployment) -> str | None:
    if session.get("cfg_model"):
        return session["cfg_model"]
    picked = session.get(PICK_MODEL)
    if defaults is not None and picked and picked in defaults.allowed_models():
        return picked
    return (defaults.model if defaults else None) or deployment.model


def resolve(
    defaults: ChannelDefaults | None, session: dict[str, str], session_key: str, deployment: Deployment
) -> RunParams:
    sandbox = session.get("cfg_sandbox") or (defaults.sandbox if defaults else None) or deployment.sandbox
    model = _model(defaults, session, deployment)
    workspace = session.get("workspace") or str(paths.session_workspace(deployment.data_root, session_key))
    repo = _repo(defaults, session) if _own_workspace(session, session_key, deployment.data_root) else None
    if repo is None:
        return RunParams(workspace, None, None, model, sandbox)
    url = (defaults.repos.get(repo) if defaults else None) or None
    return RunParams(str(repo_dir(deployment.data_root, repo)), repo, url, model, sandbox)


# ---- the thread's picks (pure texts; inbound.py does the I/O) ---------------------------------


def pick_problem(defaults: ChannelDefaults | None, what: str, value: str) -> str | None:
    """Why `value` cannot be picked here, or None."""
    allowed = _allowed(defaults, what)
    if not allowed:
        return f"No {what}s to pick from in this channel: an admin sets them in the admin page."
    if value not in allowed:
        return f"`{value}` is not allowed here. Pick one of: " + ", ".join(f"`{a}`" for a in allowed)
    return None


def _allowed(defaults: ChannelDefaults | None, what: str) -> list[str]:
    if defaults is None:
        return []
    return defaults.allowed_repos() if what == "repo" else defaults.allowed_models()


def choices_text(defaults: ChannelDefaults | None, what: str, current: str | None) -> str:
    allowed = _allowed(defaults, what)
    if not allowed:
        return f"No {what}s to pick from in this channel: an admin sets them in the admin page."
    listed = ", ".join(f"`{a}`" for a in allowed)
    now = f"`{current}`" if current else "the default"
    return f"*{what.capitalize()}:* {now}. Allowed here: {listed}. Send `-{what} <name>` to pick one."


def picked_text(what: str, value: str) -> str:
    if what == "repo":
        return f"Repo set to `{value}`. The next message starts a fresh Codex thread in it."
    return f"Model set to `{value}` from the next turn on."


def status_lines(params: RunParams) -> list[str]:
    return [
        f"*Model:* `{params.model}`" if params.model else "*Model:* the deployment's default",
        f"*Repo:* `{params.repo}`" if params.repo else "*Repo:* none (the session's own workspace)",
        f"*Sandbox:* `{params.sandbox}`",
    ]

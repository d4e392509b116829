"""Codex's git environment: its own global git config in CODEX_HOME, credentials, hooks.

Codex's shell gets `GIT_CONFIG_GLOBAL=<CODEX_HOME>/gitconfig` — never the host's global config
— which:

- answers GitHub HTTPS credentials with `gh auth git-credential` when `gh` is on the child's
  PATH, else with our small helper script that reads GH_TOKEN / GITHUB_TOKEN from the
  environment (the token is never written to disk);
- rewrites `git@github.com:` and `ssh://git@github.com/` remotes to https (unless only an SSH
  agent and no token is configured: then SSH is the way in);
- points `core.hooksPath` at `<CODEX_HOME>/git-hooks`, whose `commit-msg` adds the thread's
  `Co-authored-by:` trailers (see git_hook.py) and whose other hooks run the repository's own
  hooks, so a repository's hooks keep working;
- sets a committer identity (GIT_USER_NAME / GIT_USER_EMAIL) so commits work in an empty HOME.

Wiring (codex-runner): `Settings(CommonSettings, GitIdentitySettings)`;
`prepare_git_home(home, settings)` when a profile's CODEX_HOME is prepared;
`env.update(git_child_env(settings, profile.codex_home))` in the child environment.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from codex_broker.libs import sealing

GITCONFIG = sealing.GITCONFIG
HOOKS_DIR = sealing.HOOKS_DIR
HELPER_DIR = sealing.HELPER_DIR
HELPER_NAME = "git-credential-github-token"
GITHUB_HTTPS = "https://github.com"
HOOK_TEMPLATE = "commit-msg"
PYTHON_PLACEHOLDER = "@PYTHON@"
# client-side hooks a repository may have; each gets a pass-through to the repository's own
PASSTHROUGH_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "post-rewrite",
    "pre-auto-gc",
    "push-to-checkout",
)


class GitIdentitySettings(BaseSettings):
    """Settings the runner's Settings inherit (`class Settings(CommonSettings, GitIdentitySettings)`)."""

    gh_token: SecretStr | None = Field(
        default=None,
        description="GitHub token for Codex's gh and git push (GH_TOKEN); reaches Codex's shell only",
    )
    github_token: SecretStr | None = Field(
        default=None, description="Optional GITHUB_TOKEN for Codex's shell (used when GH_TOKEN is unset)"
    )
    git_ssh_auth_sock: str | None = Field(
        default=None, description="SSH agent socket passed to Codex's shell as SSH_AUTH_SOCK"
    )
    job_env_include_gh_token: bool = Field(
        default=False, description="Also give background jobs GH_TOKEN / GITHUB_TOKEN (default: never)"
    )
    git_user_name: str = Field(
        default="Codex", max_length=100, description="Committer name of Codex's commits (git user.name)"
    )
    git_user_email: str = Field(
        default="codex-broker@localhost.invalid",
        max_length=254,
        description="Committer email of Codex's commits (git user.email)",
    )
    git_coauthor_hook: bool = Field(
        default=True, description="Install the commit-msg hook that adds the thread's Co-authored-by trailers"
    )
    git_hook_timeout_s: float = Field(
        default=5.0, gt=0, le=30, description="Upper bound of the commit-msg hook's call to the broker"
    )

    @property
    def github_token_value(self) -> str | None:
        for secret in (self.gh_token, self.github_token):
            if secret is not None and secret.get_secret_value():
                return secret.get_secret_value()
        return None


@dataclass(frozen=True)
class GitHome:
    config_path: Path
    hooks_dir: Path
    helper_path: Path


# ---- pure parts -------------------------------------------------------------------------------


def quote_value(value: str) -> str:
    """A git config value in double quotes (backslash and quote escaped; one line only)."""
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("git config values are single-line")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def credential_helper(gh_path: str | None, helper_path: Path) -> str:
    """The `credential.<url>.helper` value: gh when available, else our env-reading script."""
    if gh_path:
        return f"!{shlex.quote(gh_path)} auth git-credential"
    return f"!{shlex.quote(str(helper_path))}"


def rewrite_ssh_remotes(has_token: bool, ssh_agent: bool) -> bool:
    """git@github.com: → https, except when SSH (an agent, no token) is the only way in."""
    return has_token or not ssh_agent


def render_gitconfig(
    *,
    user_name: str,
    user_email: str,
    helper: str,
    hooks_dir: Path | None,
    rewrite_ssh: bool,
    api_base: str,
    hook_timeout_s: float,
) -> str:
    lines = [
        "# Codex's global git config (GIT_CONFIG_GLOBAL), written by codex-runner at start.",
        "# Edits are overwritten: change the runner's settings instead.",
        "[user]",
        f"\tname = {quote_value(user_name)}",
        f"\temail = {quote_value(user_email)}",
        f"[credential {quote_value(GITHUB_HTTPS)}]",
        '\thelper = ""',  # reset: no helper from the system config answers for github.com
        f"\thelper = {quote_value(helper)}",
    ]
    if rewrite_ssh:
        lines += [
            f"[url {quote_value('https://github.com/')}]",
            f"\tinsteadOf = {quote_value('git@github.com:')}",
            f"\tinsteadOf = {quote_value('ssh://git@github.com/')}",
        ]
    if hooks_dir is not None:
        lines += ["[core]", f"\thooksPath = {quote_value(str(hooks_dir))}"]
    lines += [
        "[codex-broker]",
        f"\tapiBase = {quote_value(api_base)}",
        f"\thookTimeout = {hook_timeout_s:g}",
    ]
    return "\n".join(lines) + "\n"


CREDENTIAL_HELPER_SCRIPT = r"""#!/bin/sh
# git credential helper of codex-broker: answers https://github.com from GH_TOKEN (else
# GITHUB_TOKEN) in the environment. Nothing is stored; `store` and `erase` are ignored.
[ "$1" = get ] || exit 0
protocol=
host=
while IFS= read -r line; do
  [ -z "$line" ] && break
  case "$line" in
    protocol=*) protocol=${line#protocol=} ;;
    host=*) host=${line#host=} ;;
  esac
done
token=${GH_TOKEN:-$GITHUB_TOKEN}
[ "$protocol" = https ] && [ "$host" = github.com ] && [ -n "$token" ] || exit 0
printf 'username=x-access-token\npassword=%s\n' "$token"
"""

PASSTHROUGH_SCRIPT = r"""#!/bin/sh
# codex-broker: core.hooksPath points here; run the repository's own hook, if it has one.
own="$(git rev-parse --git-common-dir 2>/dev/null)/hooks/$(basename "$0")"
[ -x "$own" ] || exit 0
exec "$own" "$@"
"""


def commit_msg_hook(python: str) -> str:
    """The packaged commit-msg hook with the interpreter that runs git_hook.py filled in."""
    template = resources.files("codex_broker.codex_runner").joinpath("hooks", HOOK_TEMPLATE)
    return template.read_text(encoding="utf-8").replace(PYTHON_PLACEHOLDER, python.replace("'", ""))


# ---- writers ----------------------------------------------------------------------------------


def _write(path: Path, content: str, mode: int) -> None:
    """Write only when changed (atomic replace), then enforce the mode (owner-only: Codex and git
    run as the same user, and nothing else may read CODEX_HOME)."""
    try:
        if path.read_text(encoding="utf-8") == content:
            os.chmod(path, mode)
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.chmod(tmp, mode)
    tmp.replace(path)


def find_gh(child_path: str) -> str | None:
    return shutil.which("gh", path=child_path)


def prepare_git_home(
    codex_home: Path,
    settings: GitIdentitySettings,
    *,
    api_base: str,
    child_path: str,
    python: str | None = None,
) -> GitHome:
    """Write CODEX_HOME/gitconfig, the credential helper and the hooks (idempotent)."""
    codex_home.mkdir(parents=True, exist_ok=True)
    hooks_dir = codex_home / HOOKS_DIR
    helper_path = codex_home / HELPER_DIR / HELPER_NAME
    helper_path.parent.mkdir(exist_ok=True)
    _write(helper_path, CREDENTIAL_HELPER_SCRIPT, 0o700)
    if settings.git_coauthor_hook:
        hooks_dir.mkdir(exist_ok=True)
        _write(hooks_dir / HOOK_TEMPLATE, commit_msg_hook(python or sys.executable), 0o700)
        for name in PASSTHROUGH_HOOKS:
            _write(hooks_dir / name, PASSTHROUGH_SCRIPT, 0o700)
    config = render_gitconfig(
        user_name=settings.git_user_name,
        user_email=settings.git_user_email,
        helper=credential_helper(find_gh(child_path), helper_path),
        hooks_dir=hooks_dir if settings.git_coauthor_hook else None,
        rewrite_ssh=rewrite_ssh_remotes(
            settings.github_token_value is not None, bool(settings.git_ssh_auth_sock)
        ),
        api_base=api_base,
        hook_timeout_s=settings.git_hook_timeout_s,
    )
    config_path = codex_home / GITCONFIG
    _write(config_path, config, 0o600)
    return GitHome(config_path=config_path, hooks_dir=hooks_dir, helper_path=helper_path)


# ---- environments -----------------------------------------------------------------------------


def token_env(settings: GitIdentitySettings) -> dict[str, str]:
    env = {}
    if settings.gh_token is not None and settings.gh_token.get_secret_value():
        env["GH_TOKEN"] = settings.gh_token.get_secret_value()
    if settings.github_token is not None and settings.github_token.get_secret_value():
        env["GITHUB_TOKEN"] = settings.github_token.get_secret_value()
    return env


def git_child_env(settings: GitIdentitySettings, codex_home: Path, *, api_base: str) -> dict[str, str]:
    """Entries the Codex app-server child (and so Codex's shell) gets on top of its minimal env."""
    env = {
        "GIT_CONFIG_GLOBAL": str(codex_home / GITCONFIG),
        "BROKER_API_BASE": api_base,
        # a headless shell: git and gh must fail fast instead of waiting for a password
        "GIT_TERMINAL_PROMPT": "0",
        "GH_PROMPT_DISABLED": "1",
        **token_env(settings),
    }
    if settings.git_ssh_auth_sock:
        env["SSH_AUTH_SOCK"] = settings.git_ssh_auth_sock
    return env


def job_env_extras(settings: GitIdentitySettings) -> dict[str, str]:
    """What a background job may get of the git identity: the token only when configured so."""
    return token_env(settings) if settings.job_env_include_gh_token else {}

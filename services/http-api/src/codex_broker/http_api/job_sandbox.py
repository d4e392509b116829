"""Background jobs inside the session's sandbox: `codex sandbox` with the session's profile.

A job is as untrusted as the commands of its session (a prompt injection writes both), so its
script runs through the pinned Codex's own sandbox runner — bubblewrap + seccomp, a pid
namespace of its own — with the session's permission profile (`libs.sealing.job_config`) passed
as `-c` overrides. The sandbox's helper gets a CODEX_HOME of the worker's own under `jobs/`,
which the profile hides from every job; no file of it is read or written by the job.

Where the sandbox cannot start (no user namespaces, a broken bubblewrap, no Codex), the worker
refuses jobs unless the operator set JOBS_UNSANDBOXED (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codex_broker.libs import codex_sandbox, paths

SANDBOX_HOME = ".codex-sandbox"
PROBE_DIR = ".sandbox-probe"
# The sandbox sets CODEX_HOME for its own helper; the script has no use for it.
SCRIPT_PREFIX = ("/usr/bin/env", "-u", "CODEX_HOME")

Mode = Literal["sandboxed", "unsandboxed", "refused"]


@dataclass(frozen=True)
class SandboxState:
    mode: Mode
    reason: str = ""  # why the sandbox is not in use

    @property
    def refusal(self) -> str:
        return (
            "not run: background jobs run only inside Codex's sandbox, which cannot start on this "
            f"worker ({self.reason}); the operator may set JOBS_UNSANDBOXED=true to run them without it"
        )


def decide(problem: str | None, *, allow_unsandboxed: bool) -> SandboxState:
    if problem is None:
        return SandboxState("sandboxed")
    return SandboxState("unsandboxed" if allow_unsandboxed else "refused", problem)


def sandbox_home(data_root: Path) -> Path:
    # under jobs/, which every job's profile denies; job dirs are `safe_name`s, never dot-names
    return paths.job_dir(data_root, "x").parent.resolve() / SANDBOX_HOME


def sandbox_argv(codex_bin: str, config: dict[str, Any], command: list[str]) -> list[str]:
    return codex_sandbox.sandbox_argv(codex_bin, config, [*SCRIPT_PREFIX, *command])


def probe(codex_bin: str | None, data_root: Path) -> str | None:
    """None when a job can run in the sandbox here, else why not (for the logs and jobs)."""
    home = sandbox_home(data_root)
    return codex_sandbox.probe(codex_bin, home.parent / PROBE_DIR, home)


def session_network(value: str | None, default: bool) -> bool:
    """The session's `/config network` override (as the orchestrator reads it), else the default."""
    if not value:
        return default
    return value.strip().lower() in ("1", "true", "on", "yes")

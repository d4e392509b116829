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

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codex_broker.libs import paths

SANDBOX_HOME = ".codex-sandbox"
PROBE_DIR = ".sandbox-probe"
PROBE_TIMEOUT_S = 60.0
REASON_CHARS = 400
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


def toml_value(value: Any) -> str:
    """A `-c key=value` value: TOML strings, booleans and inline tables of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # json's escapes (\" \\ \n \uXXXX ...) are all valid in a TOML basic string
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML rendering for {type(value).__name__}")


def config_overrides(config: dict[str, Any]) -> list[str]:
    """`-c` flags for a `sealing` config: the profile's selection, filesystem table, network switch."""
    flags: list[str] = []
    for profile_id, profile in config.get("permissions", {}).items():
        for section, table in profile.items():
            flags += ["-c", f"permissions.{profile_id}.{section}={toml_value(table)}"]
    flags += ["-c", f"default_permissions={toml_value(config['default_permissions'])}"]
    for feature, on in config.get("features", {}).items():
        flags += ["-c", f"features.{feature}={toml_value(on)}"]
    return flags


def sandbox_argv(codex_bin: str, config: dict[str, Any], command: list[str]) -> list[str]:
    return [codex_bin, "sandbox", *config_overrides(config), "--", *SCRIPT_PREFIX, *command]


def probe_config(directory: Path) -> dict[str, Any]:
    """A profile shaped like a job's: a denied tree with a write grant inside it."""
    parent = directory.parent
    return {
        "default_permissions": "cb-probe",
        "permissions": {
            "cb-probe": {
                "filesystem": {"/": "read", str(parent): "none", str(directory): "write"},
                "network": {"enabled": False},
            }
        },
    }


def probe(codex_bin: str | None, data_root: Path) -> str | None:
    """None when a command can run in the sandbox here, else why not (for the logs and jobs)."""
    if codex_bin is None:
        return "the Codex CLI was not found (CODEX_BIN)"
    home = sandbox_home(data_root)
    directory = home.parent / PROBE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    home.mkdir(mode=0o700, exist_ok=True)
    marker = directory / "probe.txt"
    marker.unlink(missing_ok=True)
    argv = sandbox_argv(codex_bin, probe_config(directory), ["/bin/sh", "-c", "echo ok > probe.txt"])
    try:
        done = subprocess.run(
            argv,
            cwd=directory,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CODEX_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"codex sandbox could not run: {exc}"[:REASON_CHARS]
    if done.returncode == 0 and marker.exists():
        return None
    output = (done.stdout + done.stderr).decode("utf-8", errors="replace").strip()
    return f"codex sandbox exited {done.returncode}: {output[-REASON_CHARS:]}"


def session_network(value: str | None, default: bool) -> bool:
    """The session's `/config network` override (as the orchestrator reads it), else the default."""
    if not value:
        return default
    return value.strip().lower() in ("1", "true", "on", "yes")

"""Running a command inside the pinned Codex's own sandbox, and finding out whether it can.

`codex sandbox -c … -- <command>` applies a permission profile (libs/sealing.py) the way the
app-server does for a thread's commands: bubblewrap + seccomp, pid and network namespaces of
their own. The job worker runs background jobs that way; every service that seals (the runner,
the worker) and `doctor` first probe that it works on this host: without user namespaces (some
container runtimes, a hardened kernel) bubblewrap cannot start, and a service that silently ran
commands unsealed would be worse than one that refuses (docs/security.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 60.0
REASON_CHARS = 400


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
    """`-c` flags for a `sealing` config: the profile's tables, its selection, the features."""
    flags: list[str] = []
    for profile_id, profile in config.get("permissions", {}).items():
        for section, table in profile.items():
            flags += ["-c", f"permissions.{profile_id}.{section}={toml_value(table)}"]
    flags += ["-c", f"default_permissions={toml_value(config['default_permissions'])}"]
    for feature, on in config.get("features", {}).items():
        flags += ["-c", f"features.{feature}={toml_value(on)}"]
    for key, on in config.items():  # a thread's config names them as dotted keys (sealing.py)
        if key.startswith("features."):
            flags += ["-c", f"{key}={toml_value(on)}"]
    return flags


def sandbox_argv(codex_bin: str, config: dict[str, Any], command: list[str]) -> list[str]:
    return [codex_bin, "sandbox", *config_overrides(config), "--", *command]


def probe_config(directory: Path) -> dict[str, Any]:
    """A profile with what sealing relies on: a denied tree with a write grant inside it."""
    return {
        "default_permissions": "cb-probe",
        "permissions": {
            "cb-probe": {
                "filesystem": {"/": "read", str(directory.parent): "none", str(directory): "write"},
                "network": {"enabled": False},
            }
        },
    }


def probe(codex_bin: str | None, directory: Path, codex_home: Path) -> str | None:
    """None when a sealed command can run here, else why not (for readiness, logs, `doctor`).

    The probe works in a fresh directory below `directory`, which is denied to it (the write
    grant inside a denied tree is what sealing relies on); `directory` must be the probing
    service's own, never a session's."""
    if codex_bin is None:
        return "the Codex CLI was not found (CODEX_BIN)"
    directory.mkdir(parents=True, exist_ok=True)
    codex_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    # a directory of this probe's own: replicas sharing a CODEX_HOME probe at the same moment
    # (two runners starting, one restarting), and one's marker must not be another's verdict
    work = Path(tempfile.mkdtemp(prefix="probe-", dir=directory))
    try:
        return _probe_in(codex_bin, work, codex_home)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _probe_in(codex_bin: str, work: Path, codex_home: Path) -> str | None:
    marker = work / "probe.txt"
    argv = sandbox_argv(codex_bin, probe_config(work), ["/bin/sh", "-c", "echo ok > probe.txt"])
    try:
        done = subprocess.run(
            argv,
            cwd=work,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CODEX_HOME": str(codex_home)},
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

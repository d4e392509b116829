"""Running one job's script: its environment, its process group, its time limit.

The script runs in its own session (process group) so that a timeout or cancel kills
everything it started. It gets only the variables below: nothing from the worker's own
environment except PATH, HOME and LANG, so no broker or platform secret reaches it.

Inside Codex's sandbox (`job_sandbox`) the group we start is the sandbox's wrapper; the script
runs in a session of its own inside the sandbox's pid namespace, and the kernel kills all of
that namespace when the wrapper chain dies. So a stop first sends SIGTERM to the script's own
groups (the wrapper's descendants in that namespace), and SIGKILL to all after the grace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codex_broker.http_api.jobs import JobRecord

PASSTHROUGH = ("PATH", "HOME", "LANG")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
TAIL_CHARS = 3000


def job_env(
    record: JobRecord, *, token: str, api_base: str, repos_root: Path, inherited: dict[str, str]
) -> dict[str, str]:
    env = {name: inherited[name] for name in PASSTHROUGH if inherited.get(name)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(
        {
            "CHAT_PLATFORM": record.platform,
            "CHAT_CONVERSATION_ID": record.conversation_id,
            "CHAT_ROOT_MESSAGE_ID": record.root_message_id,
            "SESSION_KEY": record.session_key,
            "SESSION_WORKSPACE": record.workspace,
            "REPOS_ROOT": str(repos_root),
            "BROKER_API_BASE": api_base,
            "JOB_ID": record.id,
            "JOB_TOKEN": token,
        }
    )
    return env


def die_with_parent() -> None:
    """When our parent process dies, we get SIGKILL instead of living on as an orphan.

    Used for the script's shell (parent: the rq work horse), the work horse (parent: an rq
    worker, which puts it in its own process group) and the pool's workers.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def script_command(script_path: Path) -> list[str]:
    return ["/bin/bash", str(script_path)]


def spawn(argv: list[str], cwd: Path, env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def _signal_groups(groups: set[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def kill_group(proc: subprocess.Popen[bytes], grace_s: float, proc_root: Path = Path("/proc")) -> None:
    # the script's own groups get the SIGTERM (a sandbox wrapper would not pass it on), else ours
    inner = sandboxed_groups(proc.pid, process_table(proc_root)) - {proc.pid}
    everyone = inner | {proc.pid}
    for sig, groups in ((signal.SIGTERM, inner or everyone), (signal.SIGKILL, everyone)):
        _signal_groups(groups, sig)
        try:
            proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # members of the group may outlive the shell: make sure none is left
    _signal_groups(everyone, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


@dataclass(frozen=True)
class Outcome:
    kind: str  # exited | timeout | cancelled
    exit_code: int | None = None


def supervise(
    proc: subprocess.Popen[bytes],
    *,
    deadline: float,
    poll: Callable[[], bool],
    grace_s: float,
    interval_s: float = 1.0,
) -> Outcome:
    """Wait for the script; `poll` is called every interval and returns True to cancel it."""
    while True:
        try:
            code = proc.wait(timeout=max(0.05, min(interval_s, deadline - time.time())))
            return Outcome("exited", code)
        except subprocess.TimeoutExpired:
            pass
        if time.time() >= deadline:
            kill_group(proc, grace_s)
            return Outcome("timeout", proc.returncode)
        if poll():
            kill_group(proc, grace_s)
            return Outcome("cancelled", proc.returncode)


def tail(path: Path, chars: int = TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars * 4))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def _stat_fields(stat_line: str) -> list[str]:
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..." — comm may contain spaces or ')'
    return stat_line.rsplit(")", 1)[-1].split()


def _pgid_of(stat_line: str) -> int | None:
    rest = _stat_fields(stat_line)
    return int(rest[2]) if len(rest) > 2 and rest[2].lstrip("-").isdigit() else None


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    pid_ns: str  # "" when unreadable


def _pid_ns(entry: Path) -> str:
    try:
        return os.readlink(entry / "ns" / "pid")
    except OSError:
        return ""


def process_table(proc_root: Path = Path("/proc")) -> list[Proc]:
    table: list[Proc] = []
    with contextlib.suppress(OSError):
        for entry in proc_root.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                rest = _stat_fields((entry / "stat").read_text())
                table.append(Proc(int(entry.name), int(rest[1]), int(rest[2]), _pid_ns(entry)))
            except (OSError, ValueError, IndexError):
                continue
    return table


def sandboxed_groups(root_pid: int, table: list[Proc]) -> set[int]:
    """Process groups of `root_pid`'s descendants that live in another pid namespace (pure).

    Under a sandbox those are the script and what it started; the sandbox's own processes
    (its helper, bubblewrap) stay in ours and would die on a SIGTERM without passing it on.
    """
    by_pid = {p.pid: p for p in table}
    root = by_pid.get(root_pid)
    if root is None or not root.pid_ns:
        return set()
    children: dict[int, list[Proc]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p)
    groups: set[int] = set()
    todo, seen = [root_pid], {root_pid}
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid in seen:
                continue
            seen.add(child.pid)
            todo.append(child.pid)
            if child.pid_ns and child.pid_ns != root.pid_ns:
                groups.add(child.pgid)
    return groups


def kill_leftovers(pgid: int, job_id: str, proc_root: Path = Path("/proc")) -> int:
    """Kill processes of an earlier attempt: same group and JOB_ID in their environment.

    Checking the environment keeps a reused process-group id of someone else safe.
    """
    if pgid <= 1 or not proc_root.is_dir():
        return 0
    marker = f"JOB_ID={job_id}".encode()
    killed = 0
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _pgid_of((entry / "stat").read_text()) != pgid:
                continue
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue
    return killed

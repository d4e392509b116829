"""`python -m codex_broker.codex_runner.redteam`: the sealed-session probes, run where the runner runs.

The red-team suite in tests/security proves the boundaries on the test machine; this runs the
same kinds of probe on a deployment (inside the codex-runner container of compose or k8s, or
beside `up`), with that runner's own settings: a throwaway session gets the exact permission
profile a thread of this runner would (libs.sealing, network on, the runner's allow-list), and
each probe runs through the pinned Codex's `codex sandbox` as one of that session's commands.
Every probe states what must happen; the exit status is 1 when any did not. Nothing secret is
printed: a probe that reads a secret prints only whether it got bytes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.environment import SQLITE_DIR, prepare_profile
from codex_broker.libs import codex_sandbox, paths, sealing
from codex_broker.libs.codex_bin import find_codex_bin, native_codex_bin
from codex_broker.libs.settings import load_settings

PROBE_TIMEOUT_S = 30.0
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Probe:
    name: str
    command: str
    must: str  # "fail" | "work"
    marker: str = "REACHED"  # printed by the command when it got through


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    reached: bool

    @property
    def ok(self) -> bool:
        return self.reached == (self.probe.must == "work")


def reached(command: str) -> str:
    """`command`, then REACHED if it succeeded with output (never the output itself)."""
    return f'out=$( {command} 2>/dev/null ) && [ -n "$out" ] && echo REACHED'


def tcp_connect(host: str, port: int) -> str:
    code = f"import socket; socket.create_connection(('{host}', {port}), 3); print(1)"
    return reached(f'python3 -c "{code}"')


def probes(settings: Settings, codex_home: Path) -> list[Probe]:
    root = settings.data_root.resolve()
    redis = urlsplit(settings.redis_url)
    api = settings.api_base.rstrip("/")
    auth = f"{codex_home / 'auth.json'} {codex_home / 'config.toml'}"
    return [
        Probe("list other sessions", reached(f"ls -A {root / 'sessions'}"), "fail"),
        Probe("read Codex's auth", reached(f"cat {auth}"), "fail"),
        # every thread's state and history of this profile, all sessions' (environment.SQLITE_DIR)
        Probe("read Codex's thread databases", reached(f"cat {codex_home / SQLITE_DIR}/*"), "fail"),
        Probe("read the broker's secrets", reached(f"cat {root / 'secrets'}/*"), "fail"),
        Probe("read the logs", reached(f"find {root / 'logs'} -type f -exec head -c 64 {{}} +"), "fail"),
        Probe("read job directories", reached(f"ls -A {root / 'jobs'}"), "fail"),
        Probe("connect to Redis", tcp_connect(redis.hostname or "127.0.0.1", redis.port or 6379), "fail"),
        Probe(
            "admin API from a session",
            reached(f"curl -sS -m 10 -o /dev/null -w '%{{http_code}}' {api}/admin/api/sessions | grep '^2'"),
            "fail",
        ),
        Probe(
            "cloud metadata",
            reached(
                "M=169.254; curl -sS -m 5 -o /dev/null -w '%{http_code}' http://$M.169.254/ | grep '^[1-35]'"
            ),
            "fail",
        ),
        Probe("write the own workspace", reached("echo ok > redteam.txt && cat redteam.txt"), "work"),
        Probe("reach the broker API", reached(f"curl -sS -m 10 {api}/healthz"), "work"),
    ]


def run_probe(
    codex_bin: str | None, config: dict[str, object], workspace: Path, codex_home: Path, probe: Probe
) -> Outcome:
    """Through `codex sandbox` with the session's profile; unsandboxed when `codex_bin` is None
    (`--unsealed`: what a shell without the profile reaches, for comparison)."""
    command = ["/bin/bash", "-c", probe.command]
    argv = command if codex_bin is None else codex_sandbox.sandbox_argv(codex_bin, config, command)
    try:
        done = subprocess.run(
            argv,
            cwd=workspace,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "CODEX_HOME": str(codex_home),
                "HOME": str(workspace),
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return Outcome(probe, reached=False)
    return Outcome(probe, reached=probe.marker in done.stdout.decode("utf-8", errors="replace"))


def main(argv: list[str] | None = None) -> int:
    unsealed = "--unsealed" in (sys.argv[1:] if argv is None else argv)
    settings = load_settings(Settings)
    found = find_codex_bin(settings.codex_bin)
    if found is None:
        print("FAIL  the Codex CLI was not found (CODEX_BIN)")
        return 1
    codex_bin = native_codex_bin(found)
    profile = prepare_profile(settings, "default")
    session_key = f"redteam:probe:{uuid.uuid4().hex[:12]}"
    workspace = paths.session_workspace(settings.data_root.resolve(), session_key)
    workspace.mkdir(parents=True)
    try:
        config = sealing.sealed_config(
            settings.data_root,
            session_key,
            workspace,
            profile.codex_home,
            network_access=True,
            allowed_hosts=sealing.allowed_hosts(settings.api_base, settings.network_allowed_domains),
        )
        runner_bin = None if unsealed else codex_bin
        outcomes = [
            run_probe(runner_bin, config, workspace, profile.codex_home, probe)
            for probe in probes(settings, profile.codex_home)
        ]
    finally:
        shutil.rmtree(paths.session_dir(settings.data_root.resolve(), session_key), ignore_errors=True)
    for outcome in outcomes:
        verdict = "ok  " if outcome.ok else "FAIL"
        result = "got through" if outcome.reached else "was stopped"
        print(f"{verdict}  {outcome.probe.name}: must {outcome.probe.must}, {result}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Would one sandboxed executor per session make sealed turns cheap? Codex 0.169's executors, measured.

Under a session's permission profile Codex 0.169 runs each of its own file operations in a
fresh sandboxed helper (docs/benchmarks.md, "Issue 16"). Codex can also send a thread's commands
and file operations to an exec-server (`codex exec-server`, registered with `environment/add`
and chosen by `thread/start`'s `environments`). The idea this bench tests: start one
exec-server per session inside a sandbox of the broker's own (Codex's bundled bubblewrap here:
`/` read-only, a private directory and the app-server's CODEX_HOME hidden, the workspace
writable) and let the thread skip Codex's per-operation sandbox.

Thread shapes, interleaved round by round on the fake model (`thread/start` + `turn/start` →
first model request; then a follow-up `turn/start` → first model request), text-only turns:

  - local, unsealed: `sandbox: workspace-write` (what the latency bench's floor runs);
  - local, sealed: a permission profile like a session's (`/` read, a private tree denied, the
    workspace writable), Codex's own sandbox — what the runner does today;
  - executor, `danger-full-access`: the thread on the exec-server, no Codex sandbox at all (the
    only shape in which the exec-server skips the per-operation helper; the seal would then be
    the outer sandbox alone — its network included, which this bench does not build);
  - executor, sealed profile (`--sealed-executor`): the exec-server still runs each file
    operation through Codex's helper, inside the outer sandbox (it needs the outer sandbox to
    allow a writable /tmp and the profile's mount points, so it fails here unless they exist).

Prints p50 per shape; asserts nothing; stops everything it started.

    uv run python bench/executor_bench.py [--rounds 8] [--sealed-executor]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import TimedModel, codex_bin, load_note, marker
from bench.runner_bench import child_env
from codex_broker.codex_runner.app_server import AppServer
from codex_broker.codex_runner.environment import ALWAYS_OVERRIDES, APPS_FEATURES
from tests.fakes.codex_home import write_codex_home
from tests.helpers import free_port

ENVIRONMENT = "session-executor"


def outer_sandbox(codex: str, root: Path, codex_home: Path, workspace: Path, port: int) -> list[str]:
    """The exec-server inside Codex's bundled bubblewrap: what a per-session executor would get."""
    bwrap = str(Path(codex).parent.parent / "codex-resources" / "bwrap")
    return [
        bwrap,
        "--die-with-parent",
        "--unshare-user",
        "--unshare-pid",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--tmpfs", str(root / "private"),
        "--tmpfs", str(codex_home),
        "--bind", str(workspace), str(workspace),
        "--bind", str(root / "executor-home"), str(root / "executor-home"),
        "--",
        codex, "exec-server", "--listen", f"ws://127.0.0.1:{port}",
    ]  # fmt: skip


class Client:
    """One app-server and the turns it completed."""

    def __init__(self, server: AppServer, completed: dict[str, asyncio.Future[None]]) -> None:
        self.server = server
        self.completed = completed

    async def turn(self, thread_id: str, text: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self.completed[thread_id] = done
        params = {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        await self.server.request("turn/start", params, timeout_s=60)
        await asyncio.wait_for(done, 60)


@contextlib.asynccontextmanager
async def app_server(codex: str, codex_home: Path, home: Path, name: str) -> AsyncIterator[Client]:
    completed: dict[str, asyncio.Future[None]] = {}

    def on_notification(method: str, params: dict[str, Any]) -> None:
        future = completed.pop(params.get("threadId", ""), None) if method == "turn/completed" else None
        if future is not None and not future.done():
            future.set_result(None)

    command = [codex, "app-server"]
    for feature in APPS_FEATURES:
        command += ["--disable", feature]
    for override in ALWAYS_OVERRIDES:
        command += ["-c", override]
    server = await AppServer.spawn(
        command,
        child_env(codex_home, home),
        codex_home,
        on_notification=on_notification,
        on_server_request=lambda *_: None,
        name=name,
    )
    try:
        await server.initialize("executor-bench", "0", timeout_s=60, capabilities={"experimentalApi": True})
        yield Client(server, completed)
    finally:
        await server.close()


@contextlib.contextmanager
def executor(command: list[str], env: dict[str, str], log: Path) -> Any:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def wait_listening(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def shapes(root: Path, workspace: Path, sealed_executor: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """name → (which app-server, thread/start params beside cwd)."""
    profile = {
        "default_permissions": "bench",
        "permissions": {
            "bench": {
                "filesystem": {"/": "read", str(root / "private"): "none", str(workspace): "write"},
                "network": {"enabled": False},
            }
        },
    }
    on_executor = {"environments": [{"environmentId": ENVIRONMENT, "cwd": str(workspace)}]}
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "local, unsealed (workspace-write)": ("local", {"sandbox": "workspace-write"}),
        "local, sealed (permission profile)": ("local", {"config": profile}),
        "executor, danger-full-access": ("executor", {"sandbox": "danger-full-access", **on_executor}),
    }
    if sealed_executor:
        table["executor, sealed (permission profile)"] = ("executor", {"config": profile, **on_executor})
    return table


async def run(rounds: int, sealed_executor: bool) -> None:
    codex = codex_bin()
    print(f"executor bench: {rounds} rounds, text-only turns")
    print(f"before: {load_note()}")
    model = TimedModel()
    try:
        with tempfile.TemporaryDirectory(prefix="executor-bench-", dir="/var/tmp") as tmp:
            root = Path(tmp)  # not under /tmp: the outer sandbox puts a tmpfs there
            codex_home, workspace = root / "codex-home", root / "workspace"
            for directory in (root / "private", workspace, root / "executor-home", root / "home"):
                directory.mkdir()
            write_codex_home(codex_home, model.base_url)
            port = free_port()
            command = outer_sandbox(codex, root, codex_home, workspace, port)
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(root / "home"),
                "CODEX_HOME": str(root / "executor-home"),
            }
            with executor(command, env, root / "executor.log"):
                await wait_listening(port)
                async with (
                    app_server(codex, codex_home, root / "home", "bench-local") as local,
                    app_server(codex, codex_home, root / "home", "bench-executor") as remote,
                ):
                    add = {"environmentId": ENVIRONMENT, "execServerUrl": f"ws://127.0.0.1:{port}"}
                    await remote.server.request("environment/add", add, timeout_s=30)
                    clients = {"local": local, "executor": remote}
                    table = shapes(root, workspace, sealed_executor)
                    figures = await measure(clients, table, model, rounds, workspace)
    finally:
        model.close()
    print()
    print(f"{'thread shape':40s} {'new thread p50':>15s} {'follow-up p50':>14s}")
    for name, (new, follow) in figures.items():
        print(f"{name:40s} {_p50(new):>12s} ms {_p50(follow):>11s} ms")
    print(f"after: {load_note()}")


async def measure(
    clients: dict[str, Client],
    table: dict[str, tuple[str, dict[str, Any]]],
    model: TimedModel,
    rounds: int,
    workspace: Path,
) -> dict[str, tuple[list[float], list[float]]]:
    marks: dict[str, list[tuple[str, float, str, float]]] = {name: [] for name in table}
    failed: dict[str, str] = {}
    for round_no in range(rounds + 1):  # the first round warms every shape up and is not counted
        for name, (which, extra) in table.items():
            if name in failed:
                continue
            client = clients[which]
            try:
                first, started = marker(), time.monotonic()
                params = {"cwd": str(workspace), "approvalPolicy": "never", **extra}
                reply = await client.server.request("thread/start", params, timeout_s=60)
                thread_id = str(reply["thread"]["id"])
                await client.turn(thread_id, f"task {first}")
                second, resumed = marker(), time.monotonic()
                await client.turn(thread_id, f"and then {second}")
            except Exception as exc:  # a shape Codex refuses is reported, the others go on
                failed[name] = str(exc)[:300]
                continue
            if round_no:
                marks[name].append((first, started, second, resumed))
    turns = model.turns()
    for name, why in failed.items():
        print(f"{name}: refused: {why}")
    return {
        name: (
            [(turns[first][0] - started) * 1000 for first, started, _, _ in rows],
            [(turns[second][0] - resumed) * 1000 for _, _, second, resumed in rows],
        )
        for name, rows in marks.items()
        if rows
    }


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "—"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sealed-executor", action="store_true", help="also the executor under a profile")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.sealed_executor))


if __name__ == "__main__":
    main()

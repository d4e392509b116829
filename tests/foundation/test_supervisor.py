"""The `up` supervisor with tiny real child processes: restarts, SIGKILL escalation, leftovers."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from pathlib import Path

import pytest

from codex_broker.cli import embedded_redis
from codex_broker.cli.config import Settings
from codex_broker.cli.plan import ChildPlan
from codex_broker.cli.supervisor import run_up
from tests.e2e.harness import _alive
from tests.helpers import wait_for_output


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return Settings(
        data_root=tmp_path / "data",
        up_stop_grace_s=1.0,
        up_restart_backoff_initial_s=0.05,
        up_restart_backoff_max_s=0.2,
    )


def _child(name: str, script: str) -> ChildPlan:
    return ChildPlan(name=name, service=name, index=1, argv=(sys.executable, "-c", script), env={})


async def _until(out: io.StringIO, pattern: str, timeout_s: float = 20.0) -> re.Match[str]:
    return await wait_for_output(out, pattern, timeout_s)


async def _run(settings: Settings, children: list[ChildPlan], out: io.StringIO, stop: asyncio.Event) -> int:
    return await run_up(settings, children, base_env={}, embedded=False, stream=out, stop=stop)


async def test_crashing_child_is_restarted_with_backoff(settings: Settings) -> None:
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(_run(settings, [_child("crasher-1", "raise SystemExit(3)")], out, stop))
    await _until(out, r"restart #3 in 0\.2s")
    stop.set()
    assert await asyncio.wait_for(task, timeout=20) == 0
    text = out.getvalue()
    assert "[up]" in text and "crasher-1 died unexpectedly (exit code 3)" in text
    assert "restart #1 in" in text and "restart #2 in 0.1s" in text  # 0.05 → 0.1 → 0.2
    assert "all children stopped" in text


async def test_child_ignoring_sigterm_is_killed_after_the_grace(settings: Settings) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(_run(settings, [_child("stubborn-1", script)], out, stop))
    await _until(out, r"\[stubborn-1\]\s+ready")
    pid = int((await _until(out, r"started stubborn-1 \(pid (\d+)")).group(1))
    stop.set()
    assert await asyncio.wait_for(task, timeout=20) == 0
    assert "stubborn-1 did not stop in time: SIGKILL" in out.getvalue()
    assert not _alive(pid)


async def test_what_a_dead_child_leaves_in_its_group_is_killed(settings: Settings) -> None:
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['sleep', '120'])\n"
        "print('grandchild', p.pid, flush=True)\n"
        "sys.exit(0)\n"
    )
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(_run(settings, [_child("parent-1", script)], out, stop))
    await _until(out, r"restart #1")
    stop.set()
    assert await asyncio.wait_for(task, timeout=20) == 0
    pids = [int(p) for p in re.findall(r"grandchild (\d+)", out.getvalue())]
    assert pids
    for _ in range(200):  # bounded: SIGKILLed orphans are reaped within moments
        if not any(_alive(p) for p in pids):
            break
        await asyncio.sleep(0.05)
    assert not any(_alive(p) for p in pids)


async def test_long_lines_and_partial_last_line_are_prefixed(settings: Settings) -> None:
    script = "import sys; sys.stdout.write('x' * 200000 + '\\nlast-without-newline'); sys.stdout.flush()"
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(_run(settings, [_child("talker-1", script)], out, stop))
    await _until(out, r"\[talker-1\]\s+last-without-newline")
    stop.set()
    await asyncio.wait_for(task, timeout=20)
    assert re.search(r"\[talker-1\]\s+x{200000}\n", out.getvalue())


async def test_second_up_on_the_same_data_root_refuses(settings: Settings) -> None:
    embedded_redis.redis_dir(settings.data_root).mkdir(parents=True)
    me = os.getpid()  # a live "owner" and "redis" pid
    embedded_redis.write_state(settings.data_root, embedded_redis.EmbeddedState("redis://x", me, me))
    out = io.StringIO()
    code = await run_up(settings, [], base_env={}, embedded=True, stream=out, stop=asyncio.Event())
    assert code == 1
    assert f"codex-broker up (pid {me}) already runs on this DATA_ROOT" in out.getvalue()

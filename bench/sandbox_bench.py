"""What sealing a session costs: p50/p95 of a trivial `exec` turn, sealed and not.

One turn = the fake model asks for `exec_command true`, then answers; measured from the
RunRequest's XADD to the terminal RunEvent, through an in-process codex-runner and the real
Codex. Two kinds of turn per mode: the first turn of a new session (a new Codex thread: the
permission profile is built and Codex sets the thread's sandbox up) and a follow-up turn in that
session's loaded thread (the per-command cost alone). Modes: sealed (the shipped default,
`SEAL_SESSIONS=true`) and `SEAL_SESSIONS=false`, one runner each on its own key prefix, turns
alternating between them so that machine noise falls on both alike. The first pair is a warm-up
and not counted. Prints figures, asserts nothing.

    uv run python bench/sandbox_bench.py [--sessions 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codex_broker.libs import paths  # noqa: E402
from codex_broker.libs.keys import Keys  # noqa: E402
from tests.codex_runner.harness import (  # noqa: E402
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.fakes.codex_home import write_codex_home  # noqa: E402
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
MODES = ((True, "sealed (default)"), (False, "SEAL_SESSIONS=false"))
KINDS = ("new thread", "follow-up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Mode:
    def __init__(self, root: Path, sealed: bool, model: FakeModel) -> None:
        self.sealed = sealed
        self.data_root = root / ("sealed" if sealed else "open")
        self.keys = Keys(prefix=f"cbbench{uuid.uuid4().hex[:6]}", shard_count=4)
        write_codex_home(paths.codex_home(self.data_root), model.base_url)

    def settings(self) -> object:
        return runner_settings(self.data_root, self.keys.prefix, REDIS_URL, seal_sessions=self.sealed)


async def exec_turn(
    redis: Redis, mode: Mode, model: FakeModel, session: str, thread_id: str | None
) -> tuple[float, str]:
    """One turn; (seconds, the thread's id)."""
    model.script(tool_call_reply("true"), text_reply("done"))
    request = new_request(mode.data_root, "run true", session=session, thread_id=thread_id)
    started = time.perf_counter()
    await publish_run(redis, mode.keys, request)
    events = await wait_terminal(redis, mode.keys, request)
    elapsed = time.perf_counter() - started
    if events[-1].kind != "completed" or not events[-1].thread_id:
        raise SystemExit(f"turn did not complete: {events[-1].text}")
    return elapsed, events[-1].thread_id


async def session_pair(redis: Redis, mode: Mode, model: FakeModel) -> tuple[float, float]:
    session = uuid.uuid4().hex
    first, thread_id = await exec_turn(redis, mode, model, session, None)
    follow_up, _ = await exec_turn(redis, mode, model, session, thread_id)
    return first, follow_up


async def main(sessions: int) -> None:
    results = {(sealed, kind): [] for sealed, _ in MODES for kind in KINDS}  # type: dict[tuple[bool, str], list[float]]
    redis = Redis.from_url(REDIS_URL)
    with FakeModel(instant=True) as model, tempfile.TemporaryDirectory(dir=ROOT / ".data") as tmp:
        modes = [Mode(Path(tmp), sealed, model) for sealed, _ in MODES]
        async with AsyncExitStack() as stack:
            for mode in modes:
                await stack.enter_async_context(running_runner(mode.settings()))  # type: ignore[arg-type]
            for round_no in range(sessions + 1):
                for mode in modes:
                    first, follow_up = await session_pair(redis, mode, model)
                    if round_no > 0:  # round 0 warms both runners up
                        results[(mode.sealed, KINDS[0])].append(first)
                        results[(mode.sealed, KINDS[1])].append(follow_up)
    await redis.aclose()
    report(results, sessions)


def report(results: dict[tuple[bool, str], list[float]], sessions: int) -> None:
    print(f"exec turn (exec_command `true` + answer), {sessions} sessions per mode, ms")
    print(f"{'mode':<22}{'turn':<12}{'p50':>8}{'p95':>8}{'mean':>8}")
    for sealed, label in MODES:
        for kind in KINDS:
            values = results[(sealed, kind)]
            print(
                f"{label:<22}{kind:<12}{pct(values, 0.5) * 1000:8.1f}{pct(values, 0.95) * 1000:8.1f}"
                f"{statistics.mean(values) * 1000:8.1f}"
            )
    for kind in KINDS:
        delta = (pct(results[(True, kind)], 0.5) - pct(results[(False, kind)], 0.5)) * 1000
        print(f"sealing adds {delta:.1f} ms at p50 to a {kind} exec turn")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=15)
    args = parser.parse_args()
    (ROOT / ".data").mkdir(exist_ok=True)
    asyncio.run(main(args.sessions))

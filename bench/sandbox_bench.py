"""What sealing a session costs: p50/p95 of a trivial `exec` turn, sealed and not.

One turn = the fake model asks for `exec_command true`, then answers (`--turn text`: it answers
at once, no command: what sealing costs a turn by itself); measured from the RunRequest's XADD to
the terminal RunEvent, through an in-process codex-runner and the real Codex. Two kinds of turn
per mode: the first turn of a new session (a new Codex thread: the permission profile is built
and Codex sets the thread's sandbox up) and a follow-up turn in that session's loaded thread (the
per-command cost alone). Modes: sealed (the shipped default, `SEAL_SESSIONS=true`) and
`SEAL_SESSIONS=false`, one runner each on its own key prefix, turns alternating between them so
that machine noise falls on both alike. `--variants` adds sealed runners with the runner's cuts
undone by the operator's own overrides (CODEX_CONFIG_OVERRIDES): Codex's databases back at the
top of CODEX_HOME (`sqlite_home`), project docs looked for (`project_doc_max_bytes`), and both.
The first round is a warm-up and not counted. Prints figures, asserts nothing.

    uv run python bench/sandbox_bench.py [--sessions 15] [--turn exec|text] [--variants]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
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
KINDS = ("new thread", "follow-up")
CODEX_DEFAULT_DOC_BYTES = 32768  # Codex 0.169's own project_doc_max_bytes


def _no_overrides(codex_home: Path) -> list[str]:
    return []


def _databases_at_the_top(codex_home: Path) -> list[str]:
    return [f'sqlite_home="{codex_home}"']


def _docs_looked_for(codex_home: Path) -> list[str]:
    return [f"project_doc_max_bytes={CODEX_DEFAULT_DOC_BYTES}"]


def _both_undone(codex_home: Path) -> list[str]:
    return [*_databases_at_the_top(codex_home), *_docs_looked_for(codex_home)]


@dataclass(frozen=True)
class Variant:
    label: str
    sealed: bool
    overrides: Callable[[Path], list[str]] = _no_overrides


DEFAULT = Variant("sealed (default)", True)
UNSEALED = Variant("SEAL_SESSIONS=false", False)
CUTS_UNDONE = (
    Variant("sealed, databases at top", True, _databases_at_the_top),
    Variant("sealed, docs looked for", True, _docs_looked_for),
    Variant("sealed, both undone", True, _both_undone),
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Mode:
    def __init__(self, root: Path, index: int, variant: Variant, model: FakeModel) -> None:
        self.variant = variant
        self.data_root = root / f"mode-{index}"
        self.keys = Keys(prefix=f"cbbench{uuid.uuid4().hex[:6]}", shard_count=4)
        write_codex_home(paths.codex_home(self.data_root), model.base_url)

    def settings(self) -> object:
        overrides = self.variant.overrides(paths.codex_home(self.data_root).resolve())
        return runner_settings(
            self.data_root,
            self.keys.prefix,
            REDIS_URL,
            seal_sessions=self.variant.sealed,
            codex_config_overrides=overrides,
        )


async def exec_turn(
    redis: Redis, mode: Mode, model: FakeModel, session: str, thread_id: str | None, turn: str
) -> tuple[float, str]:
    """One turn; (seconds, the thread's id)."""
    if turn == "exec":
        model.script(tool_call_reply("true"), text_reply("done"))
    else:
        model.script(text_reply("done"))
    request = new_request(mode.data_root, f"{turn} turn", session=session, thread_id=thread_id)
    started = time.perf_counter()
    await publish_run(redis, mode.keys, request)
    events = await wait_terminal(redis, mode.keys, request)
    elapsed = time.perf_counter() - started
    if events[-1].kind != "completed" or not events[-1].thread_id:
        raise SystemExit(f"turn did not complete: {events[-1].text}")
    return elapsed, events[-1].thread_id


async def session_pair(redis: Redis, mode: Mode, model: FakeModel, turn: str) -> tuple[float, float]:
    session = uuid.uuid4().hex
    first, thread_id = await exec_turn(redis, mode, model, session, None, turn)
    follow_up, _ = await exec_turn(redis, mode, model, session, thread_id, turn)
    return first, follow_up


Results = dict[tuple[str, str], list[float]]


async def main(sessions: int, turn: str, variants: tuple[Variant, ...]) -> None:
    results: Results = {(variant.label, kind): [] for variant in variants for kind in KINDS}
    redis = Redis.from_url(REDIS_URL)
    with FakeModel(instant=True) as model, tempfile.TemporaryDirectory(dir=ROOT / ".data") as tmp:
        modes = [Mode(Path(tmp), index, variant, model) for index, variant in enumerate(variants)]
        async with AsyncExitStack() as stack:
            for mode in modes:
                await stack.enter_async_context(running_runner(mode.settings()))  # type: ignore[arg-type]
            for round_no in range(sessions + 1):
                for mode in modes:
                    first, follow_up = await session_pair(redis, mode, model, turn)
                    if round_no > 0:  # round 0 warms every runner up
                        results[(mode.variant.label, KINDS[0])].append(first)
                        results[(mode.variant.label, KINDS[1])].append(follow_up)
    await redis.aclose()
    report(results, sessions, turn, variants)


def report(results: Results, sessions: int, turn: str, variants: tuple[Variant, ...]) -> None:
    what = "exec_command `true` + answer" if turn == "exec" else "an answer, no command"
    print(f"{turn} turn ({what}), {sessions} sessions per mode, ms")
    print(f"{'mode':<26}{'turn':<12}{'p50':>8}{'p95':>8}{'mean':>8}")
    for variant in variants:
        for kind in KINDS:
            values = results[(variant.label, kind)]
            print(
                f"{variant.label:<26}{kind:<12}{pct(values, 0.5) * 1000:8.1f}{pct(values, 0.95) * 1000:8.1f}"
                f"{statistics.mean(values) * 1000:8.1f}"
            )
    for variant in (v for v in variants if v.sealed):
        for kind in KINDS:
            sealed, unsealed = results[(variant.label, kind)], results[(UNSEALED.label, kind)]
            delta = (pct(sealed, 0.5) - pct(unsealed, 0.5)) * 1000
            print(f"{variant.label}: sealing adds {delta:.1f} ms at p50 to a {kind} {turn} turn")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=15)
    parser.add_argument("--turn", choices=("exec", "text"), default="exec")
    parser.add_argument("--variants", action="store_true", help="also sealed with the runner's cuts undone")
    args = parser.parse_args()
    (ROOT / ".data").mkdir(exist_ok=True)
    chosen = (DEFAULT, *(CUTS_UNDONE if args.variants else ()), UNSEALED)
    asyncio.run(main(args.sessions, args.turn, chosen))

"""codex-runner benchmark: what the runner adds over driving `codex app-server` directly.

Prints (no assertions):
  - cold app-server start (spawn → initialize answered)
  - thread/start latency
  - per-turn latency, direct app-server vs through the runner (RunRequest XADD → `completed`
    RunEvent read back), for follow-up turns on a loaded thread and for new threads; p50/p95
  - RSS of one app-server with 0 / 50 / 200 idle loaded threads

Both paths use the same fake Responses endpoint in instant mode (a separate process) and the
same CODEX_HOME config. The runner runs as its own process, as in production.

    uv run python bench/runner_bench.py [--turns 40] [--threads 0,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codex_broker.codex_runner.app_server import AppServer  # noqa: E402
from codex_broker.codex_runner.environment import native_codex_bin  # noqa: E402
from codex_broker.libs import paths  # noqa: E402
from codex_broker.libs.bus import DATA_FIELD  # noqa: E402
from codex_broker.libs.codex_bin import find_codex_bin  # noqa: E402
from codex_broker.libs.contracts import Coordinates, RunEvent, RunInput, RunRequest, decode, encode  # noqa: E402
from codex_broker.libs.keys import Keys  # noqa: E402
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home  # noqa: E402
from tests.fakes.fake_model import FakeModelClient  # noqa: E402
from tests.helpers import free_port  # noqa: E402

DEAD_PROXY = "http://127.0.0.1:9"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def child_env(codex_home: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "OPENAI_API_KEY": FAKE_API_KEY,
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }


class Direct:
    """A bare client of one app-server: what the runner is compared against."""

    def __init__(self, server: AppServer, completed: dict[str, asyncio.Future[None]]) -> None:
        self.server = server
        self.completed = completed

    @classmethod
    async def start(cls, codex: str, codex_home: Path, home: Path) -> tuple[Direct, float]:
        completed: dict[str, asyncio.Future[None]] = {}

        def on_notification(method: str, params: dict[str, Any]) -> None:
            if method == "turn/completed":
                future = completed.pop(params.get("threadId", ""), None)
                if future is not None and not future.done():
                    future.set_result(None)

        started = time.perf_counter()
        server = await AppServer.spawn(
            [codex, "app-server", "-c", "analytics.enabled=false"],
            child_env(codex_home, home),
            codex_home,
            on_notification=on_notification,
            on_server_request=lambda *_: None,
            name="bench-direct",
        )
        await server.initialize("bench", "0", timeout_s=60)
        return cls(server, completed), time.perf_counter() - started

    async def thread_start(self, cwd: Path) -> str:
        result = await self.server.request(
            "thread/start",
            {"cwd": str(cwd), "approvalPolicy": "never", "sandbox": "workspace-write"},
            timeout_s=60,
        )
        return str(result["thread"]["id"])

    async def turn(self, thread_id: str, text: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self.completed[thread_id] = done
        await self.server.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}, timeout_s=60
        )
        await asyncio.wait_for(done, 60)


class ViaRunner:
    """The same turns as RunRequests to a runner process, timed until `completed` is read back."""

    def __init__(self, redis: Redis, keys: Keys, data_root: Path) -> None:
        self.redis = redis
        self.keys = keys
        self.data_root = data_root

    async def turn(self, session: str, text: str, thread_id: str | None) -> tuple[float, str]:
        coords = Coordinates(platform="slack", conversation_id="CBENCH", root_message_id=session)
        request = RunRequest(
            session_key=coords.session_key,
            coords=coords,
            thread_id=thread_id,
            workspace=str(paths.session_workspace(self.data_root, coords.session_key)),
            input=[RunInput(type="text", text=text)],
        )
        stream = self.keys.run_events_stream_for(request.session_key)
        last: Any = await self.redis.xrevrange(stream, count=1)
        cursor: Any = last[0][0] if last else b"0-0"
        started = time.perf_counter()
        await self.redis.xadd(self.keys.runs_stream, {DATA_FIELD: encode(request)})
        while True:
            response: Any = await self.redis.xread({stream: cursor}, block=60_000, count=100)
            if not response:
                raise TimeoutError("no run event within 60 s")
            for entry_id, fields in response[0][1]:
                cursor = entry_id
                event = decode(RunEvent, fields[DATA_FIELD.encode()])
                if event.run_id == request.run_id and event.is_terminal:
                    if event.kind != "completed":
                        raise RuntimeError(f"run ended {event.kind}: {event.text}")
                    return time.perf_counter() - started, str(event.thread_id)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, **kwargs)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """RSS of a process and its descendants (Codex may start helpers), in kB."""
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


@contextlib.asynccontextmanager
async def instant_model(codex_home: Path) -> AsyncIterator[None]:
    """The project's fake model in instant mode as a process, and `codex_home` configured for it."""
    port = free_port()
    fake = spawn([sys.executable, "-m", "tests.fakes.fake_model", "--port", str(port), "--instant"], cwd=ROOT)
    try:
        client = FakeModelClient(port)
        for _ in range(100):
            if client.ready():
                break
            await asyncio.sleep(0.05)
        write_codex_home(codex_home, client.base_url)
        yield
    finally:
        fake.terminate()
        fake.wait(timeout=10)


async def bench_latency(codex: str, root: Path, turns: int) -> None:
    data_root = root / "data"
    codex_home = paths.codex_home(data_root)
    runner: subprocess.Popen[bytes] | None = None
    redis = Redis.from_url(REDIS_URL)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix=prefix, shard_count=8)
    async with instant_model(codex_home):
        try:
            home = root / "home"
            home.mkdir()

            colds = []
            for _ in range(3):
                direct, cold = await Direct.start(codex, codex_home, home)
                colds.append(cold)
                await direct.server.close()
            direct, _ = await Direct.start(codex, codex_home, home)
            workspace = root / "direct-ws"
            workspace.mkdir()
            starts = []
            for _ in range(10):
                began = time.perf_counter()
                await direct.thread_start(workspace)
                starts.append(time.perf_counter() - began)

            runner_env = {
                **child_env(codex_home, home),
                "REDIS_URL": REDIS_URL,
                "KEY_PREFIX": prefix,
                "SHARD_COUNT": "8",
                "DATA_ROOT": str(data_root),
                "INSTANCE_ID": "bench-runner",
                "METRICS_PORT": "0",
                "LOG_LEVEL": "WARNING",
                "MAX_CONCURRENT_TURNS": "8",
            }
            runner_env.pop("CODEX_HOME")
            runner = spawn(
                [sys.executable, "-m", "codex_broker.codex_runner"],
                cwd=root,
                env=runner_env,
                stdout=subprocess.DEVNULL,
            )
            via = ViaRunner(redis, keys, data_root)
            await via.turn("warmup", "warm up", None)  # waits for the runner's app-server too

            # follow-up turns on one loaded thread, alternating blocks to share any drift
            direct_thread = await direct.thread_start(workspace)
            _, runner_thread = await via.turn("follow", "first", None)
            direct_follow: list[float] = []
            runner_follow: list[float] = []
            runner_cpu_before = cpu_s(runner.pid)
            for i in range(turns):  # interleaved, so both see the same machine load
                began = time.perf_counter()
                await direct.turn(direct_thread, f"direct {i}")
                direct_follow.append(time.perf_counter() - began)
                elapsed, _ = await via.turn("follow", f"runner {i}", runner_thread)
                runner_follow.append(elapsed)
            runner_cpu_per_turn = (cpu_s(runner.pid) - runner_cpu_before) / turns
            direct_new: list[float] = []
            runner_new: list[float] = []
            for i in range(max(10, turns // 2)):
                began = time.perf_counter()
                await direct.turn(await direct.thread_start(workspace), f"new {i}")
                direct_new.append(time.perf_counter() - began)
                elapsed, _ = await via.turn(f"new-{i}", f"new {i}", None)
                runner_new.append(elapsed)
            await direct.server.close()

            print(f"{'measure':<44}{'p50 ms':>9}{'p95 ms':>9}{'n':>5}")
            cold_name = "cold app-server start (spawn → initialize)"
            print(f"{cold_name:<44}{ms(statistics.median(colds))}{ms(max(colds))}{len(colds):>5}")
            print(
                f"{'thread/start (direct)':<44}{ms(pct(starts, 0.5))}{ms(pct(starts, 0.95))}{len(starts):>5}"
            )
            rows = [
                ("follow-up turn, direct app-server", direct_follow),
                ("follow-up turn, via runner", runner_follow),
                ("new-thread turn, direct app-server", direct_new),
                ("new-thread turn, via runner", runner_new),
            ]
            for name, values in rows:
                print(f"{name:<44}{ms(pct(values, 0.5))}{ms(pct(values, 0.95))}{len(values):>5}")
            added = statistics.median(r - d for r, d in zip(runner_follow, direct_follow, strict=True))
            added_new = statistics.median(r - d for r, d in zip(runner_new, direct_new, strict=True))
            print(f"{'runner adds per follow-up turn (median of pairs)':<44}{ms(added)}")
            print(f"{'runner adds per new-thread turn (median of pairs)':<44}{ms(added_new)}")
            print(f"{'runner process CPU per follow-up turn':<44}{ms(runner_cpu_per_turn)}")
            print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        finally:
            if runner is not None:
                runner.terminate()
                runner.wait(timeout=60)
            async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
                await redis.delete(key)
            await redis.aclose()


async def bench_memory(codex: str, root: Path, counts: list[int]) -> None:
    data_root = root / "mem"
    codex_home = paths.codex_home(data_root)
    async with instant_model(codex_home):
        home = root / "mem-home"
        home.mkdir(parents=True)
        direct, _ = await Direct.start(codex, codex_home, home)
        loaded = 0
        baseline = 0
        print(f"\n{'idle loaded threads':<24}{'RSS MiB':>10}{'per thread KiB':>16}")
        for count in sorted(counts):
            while loaded < count:
                workspace = root / "mem-ws" / str(loaded)
                workspace.mkdir(parents=True)
                thread_id = await direct.thread_start(workspace)
                await direct.turn(thread_id, "hello")  # a thread that has had one turn, then idles
                loaded += 1
            await asyncio.sleep(1.0)
            rss = rss_kb(direct.server.pid)
            if count == 0:
                baseline = rss
            per = (rss - baseline) / count if count else 0
            print(f"{count:<24}{rss / 1024:>10.1f}{per:>16.0f}")
        await direct.server.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--threads", default="0,50,200")
    args = parser.parse_args()
    codex = find_codex_bin()
    if codex is None:
        raise SystemExit("Codex CLI not installed: scripts/install-codex.sh")
    codex = native_codex_bin(codex)
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        root = Path(tmp)
        await bench_latency(codex, root, args.turns)
        await bench_memory(codex, root, [int(n) for n in args.threads.split(",")])


if __name__ == "__main__":
    asyncio.run(main())

"""Shared pieces of the whole-broker benchmarks: the timed fakes as processes, the broker under
`codex-broker up` on them (`broker_bench`), the direct app-server floor (runner_bench's `Direct`),
percentiles, per-process CPU and RSS from /proc, and the table printer.

All clocks are `time.monotonic()` (CLOCK_MONOTONIC), shared by every process on the machine, so
a time taken in the fake Slack and one taken in the fake model can be subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.runner_bench import Direct, child_env, rss_kb  # noqa: E402
from codex_broker.codex_runner.app_server import AppServer  # noqa: E402
from codex_broker.codex_runner.environment import ALWAYS_OVERRIDES, APPS_FEATURES, native_codex_bin  # noqa: E402
from codex_broker.http_api.worker import SERVICE as WORKER_SERVICE  # noqa: E402
from codex_broker.libs import paths  # noqa: E402
from codex_broker.libs.codex_bin import find_codex_bin  # noqa: E402
from tests.e2e.harness import ALL_SERVICES, BrokerProcess, descendants  # noqa: E402
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home  # noqa: E402
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process  # noqa: E402
from tests.helpers import free_port  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_USER = "U1"
_NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def marker() -> str:
    """A token that identifies one turn in the model request and in the final answer."""
    return "bm" + uuid.uuid4().hex[:12]


# ---- figures ---------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms_row(name: str, values: Sequence[float]) -> list[str]:
    """name, p50, p95, p99 (ms), n — for values in seconds."""
    if not values:
        return [name, "-", "-", "-", "0"]
    return [name, *(f"{pct(values, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99)), str(len(values))]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for index, row in enumerate([headers, *rows]):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """A bench's parser: the first line of its docstring as the description, the rest as written."""
    return argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_settings_args(parser: argparse.ArgumentParser) -> None:
    """Non-default settings for a run beside the shipped defaults (never instead of them)."""
    parser.add_argument("--lifted", action="store_true", help="run caps lifted: " + str(LIFTED_CAPS))
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker setting for this run, e.g. DEBOUNCE_MS=300 (repeatable)",
    )


def settings_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(LIFTED_CAPS) if args.lifted else {}
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def settings_note(env: Mapping[str, str]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
    return f"settings: shipped defaults{' except ' + shown if shown else ''}"


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


# ---- processes: CPU and memory -----------------------------------------------------------------


def tree(pid: int) -> set[int]:
    return {pid} | descendants(pid)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants."""
    total = 0.0
    for member in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its descendants (a runner and its app-servers), MiB."""
    return rss_kb(pid) / 1024


def own_rss_mib(pid: int) -> float:
    """RSS of one process alone, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def service_pids(broker: BrokerProcess) -> dict[str, int]:
    """Instance name → pid of every live child of `up` (from its `[up] started` lines)."""
    found = {}
    for name, (pid, _) in broker.started().items():
        if Path(f"/proc/{pid}").exists():
            found[name] = pid
    return found


@dataclass
class Usage:
    cpu_s: dict[str, float]

    @classmethod
    def sample(cls, pids: Mapping[str, int]) -> Usage:
        return cls({name: tree_cpu_s(pid) for name, pid in pids.items()})

    def since(self, earlier: Usage) -> dict[str, float]:
        return {name: self.cpu_s[name] - earlier.cpu_s.get(name, 0.0) for name in self.cpu_s}


# ---- the timed fakes ---------------------------------------------------------------------------


class TimedModel:
    """bench/_timed_model.py as a process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._timed_model", "--port", str(self.port)],
            cwd=ROOT,
            env=_NO_PROXY_ENV,
            stdin=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=30)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                self.http.get("/_timings")
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("timed fake model did not start")
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def hold(self, count: int | None, timeout_s: float = 60) -> None:
        """Hold answers until `count` requests wait together (None: answer at once again)."""
        self.http.post("/_hold", json={"count": count, "timeout_s": timeout_s})

    def held(self) -> int:
        return int(self.http.get("/_held").json()["held"])

    def turns(self) -> dict[str, tuple[float, float, int]]:
        """marker → (first request at, last answer done at, requests)."""
        raw = self.http.get("/_timings").json()["turns"]
        return {k: (float(v[0]), float(v[1]), int(v[2])) for k, v in raw.items()}

    def close(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class TimedSlack:
    """bench/_timed_slack.py as a process; `client` is the fake's ordinary driving client."""

    def __init__(self, fake: FakeSlackProcess) -> None:
        self.info = fake.info
        self.env = fake.env
        self.client = fake.client
        self.client.add_user(BENCH_USER, "bench", display_name="Bench")
        self.http = httpx.Client(base_url=self.info["base_url"], trust_env=False, timeout=660)

    def mention_text(self, mark: str) -> str:
        return f"<@{self.info['bot_user_id']}> task {mark}"

    def mention(self, channel: str, mark: str) -> str:
        """A new thread: a top-level mention; returns its ts (the thread root)."""
        return self.client.user_message(channel, BENCH_USER, self.mention_text(mark)).ts

    def reply(self, channel: str, thread_ts: str, mark: str) -> None:
        """A follow-up: a plain reply in the thread (no mention needed once a session exists)."""
        self.client.user_message(channel, BENCH_USER, f"and then {mark}", thread_ts=thread_ts)

    def burst(self, messages: list[dict[str, Any]]) -> list[str]:
        return list(self.http.post("/_bench/burst", json={"messages": messages}).json()["ts"])

    def wait_answers(self, count: int, timeout_s: float = 60) -> int:
        """Until `count` answers in total reached the fake (returns how many did)."""
        response = self.http.get("/_bench/wait", params={"count": count, "timeout": timeout_s})
        return int(response.json()["answered"])

    def timings(self) -> tuple[dict[str, float], dict[str, tuple[float, str]]]:
        raw = self.http.get("/_bench/timings").json()
        answered = {k: (float(v[0]), str(v[1])) for k, v in raw["answered"].items()}
        return {k: float(v) for k, v in raw["pushed"].items()}, answered


@contextlib.contextmanager
def fakes() -> Iterator[tuple[TimedSlack, TimedModel]]:
    model = TimedModel()
    try:
        with start_fake_slack_process(module="bench._timed_slack", client_timeout_s=120) as fake:
            slack = TimedSlack(fake)
            try:
                yield slack, model
            finally:
                slack.http.close()
    finally:
        model.close()


# ---- the broker --------------------------------------------------------------------------------


# Caps lifted (non-default): what the benches ran with before the defaults were raised (issue 16);
# `--lifted` in the latency and burst benches, always in the load and routing benches (their
# subject is the engine's throughput, not admission).
LIFTED_CAPS = {"MAX_ACTIVE_RUNS": "0", "MAX_CONCURRENT_TURNS": "256"}


def broker_env(slack: TimedSlack, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every whole-broker bench runs with: the shipped defaults (no debounce, the default
    run caps), Slack's fallback surface (the final answer is a chat.postMessage) unless the
    caller turns native streaming on, no backfill or housekeeping (neither is on the path)."""
    return {
        **slack.env,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "SLACK_NATIVE_STREAMING": "false",
        "SLACK_INITIAL_THREAD_HISTORY_COUNT": "0",
        "HOUSEKEEPING_ENABLED": "false",
        **(extra or {}),
    }


def start_broker(
    data_root: Path, env: Mapping[str, str], *, replicas: Mapping[str, int] | None = None
) -> BrokerProcess:
    prefix = f"cbbench{uuid.uuid4().hex[:8]}"
    # Every process `up` starts must have beaten once (its imports done) before anything is
    # measured: a broker that has been running a while has nothing starting. Waiting for the
    # four on the Slack path only let the first seconds of every bench share the 2 CPUs with
    # ingress-feishu importing lark-oapi (~2.7 s of CPU, 10,000 modules).
    services = [*ALL_SERVICES, WORKER_SERVICE]
    broker = BrokerProcess(
        data_root=data_root,
        redis_url=REDIS_URL,
        key_prefix=prefix,
        env=env,
        services=services,
        replicas=replicas,
        start_timeout_s=120,
    )
    broker.start()
    pids = ", ".join(f"{name} {pid}" for name, pid in sorted(service_pids(broker).items()))
    print(f"broker up: KEY_PREFIX={prefix}, {pids}", flush=True)
    return broker


def drop_keys(prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"{prefix}:*", f"{{{prefix}:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
    finally:
        client.close()


@dataclass
class BrokerBench:
    root: Path  # a temporary directory; the broker's DATA_ROOT is `root / "data"`
    slack: TimedSlack
    model: TimedModel
    broker: BrokerProcess

    @property
    def codex_home(self) -> Path:
        return paths.codex_home(self.root / "data")


@contextlib.contextmanager
def broker_bench(
    name: str, extra_env: Mapping[str, str] | None = None, *, replicas: Mapping[str, int] | None = None
) -> Iterator[BrokerBench]:
    """The timed fakes and the broker on them (`broker_env(slack, extra_env)`) in a temporary
    directory, once the ingress holds its Socket Mode connection; stopped and its keys dropped
    on exit."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-bench-") as tmp, fakes() as (slack, model):
        root = Path(tmp)
        write_codex_home(paths.codex_home(root / "data"), model.base_url)
        broker = start_broker(root / "data", broker_env(slack, extra_env), replicas=replicas)
        try:
            slack.client.wait_connected(timeout_s=60)
            yield BrokerBench(root, slack, model, broker)
        finally:
            broker.stop()
            drop_keys(broker.key_prefix)


# ---- the floor: the same fake model through one app-server, no broker ---------------------------


def codex_bin() -> str:
    """The native Codex binary the floor runs (the runner resolves the same one)."""
    codex = find_codex_bin()
    if codex is None:
        raise SystemExit("Codex CLI not installed: scripts/install-codex.sh")
    return native_codex_bin(codex)


def floor_databases(root: Path) -> str:
    """The floor shares the runner's CODEX_HOME; its SQLite databases go elsewhere, so that the
    runner's CODEX_HOME holds what it holds in production (the runner keeps Codex's databases in
    CODEX_HOME/sqlite; the floor's at the top would be one more entry per file for the seal to
    hide in every sandboxed operation, environment.SQLITE_DIR)."""
    folder = root / "floor-sqlite"
    folder.mkdir(exist_ok=True)
    return f"sqlite_home={json.dumps(str(folder))}"


@contextlib.asynccontextmanager
async def floor(codex: str, bench: BrokerBench, overrides: Sequence[str] = ()) -> AsyncIterator[Direct]:
    """runner_bench's bare client, started with the runner's own command line (apps and plugins
    disabled, the same -c overrides) so that the floor runs the same Codex configuration, on the
    bench's CODEX_HOME and fake model. `overrides`: extra `-c key=value`, as the runner gets them
    from CODEX_CONFIG_OVERRIDES."""
    completed: dict[str, asyncio.Future[None]] = {}
    completed_at: dict[str, float] = {}  # thread id → when its last turn/completed arrived

    def on_notification(method: str, params: dict[str, Any]) -> None:
        if method == "turn/completed":
            completed_at[params.get("threadId", "")] = time.monotonic()
            future = completed.pop(params.get("threadId", ""), None)
            if future is not None and not future.done():
                future.set_result(None)

    home = bench.root / "home"
    home.mkdir()
    command = [codex, "app-server"]
    for feature in APPS_FEATURES:
        command += ["--disable", feature]
    for override in (*ALWAYS_OVERRIDES, floor_databases(bench.root), *overrides):
        command += ["-c", override]
    server = await AppServer.spawn(
        command,
        child_env(bench.codex_home, home),
        bench.codex_home,
        on_notification=on_notification,
        on_server_request=lambda *_: None,
        name="bench-floor",
    )
    try:
        await server.initialize("bench", "0", timeout_s=60)
        direct = Direct(server, completed)
        direct.completed_at = completed_at  # type: ignore[attr-defined]
        yield direct
    finally:
        await server.close()

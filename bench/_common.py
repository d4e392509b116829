"""Shared pieces of the whole-broker benchmarks: the timed fakes as processes, the broker under
`codex-broker up`, the direct app-server floor (runner_bench's `Direct`), percentiles, per-process
CPU and RSS from /proc, and the table printer.

All clocks are `time.monotonic()` (CLOCK_MONOTONIC), shared by every process on the machine, so
a time taken in the fake Slack and one taken in the fake model can be subtracted.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.runner_bench import Direct, child_env, rss_kb  # noqa: E402
from codex_broker.codex_runner.app_server import AppServer  # noqa: E402
from codex_broker.codex_runner.environment import ALWAYS_OVERRIDES, APPS_FEATURES  # noqa: E402
from tests.e2e.harness import BrokerProcess, descendants  # noqa: E402
from tests.fakes.codex_home import FAKE_API_KEY  # noqa: E402
from tests.fakes.fake_slack_client import FakeSlackClient  # noqa: E402
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

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._timed_slack"],
            cwd=ROOT,
            env=_NO_PROXY_ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line:
            self.process.kill()
            self.process.wait(timeout=10)
            raise RuntimeError("timed fake Slack did not start")
        self.info = json.loads(line)
        self.client = FakeSlackClient(self.info["base_url"], timeout_s=120)
        self.http = httpx.Client(base_url=self.info["base_url"], trust_env=False, timeout=660)
        self.client.add_user(BENCH_USER, "bench", display_name="Bench")

    @property
    def env(self) -> dict[str, str]:
        return {
            "SLACK_API_URL": self.info["api_url"],
            "SLACK_BOT_TOKEN": self.info["bot_token"],
            "SLACK_APP_TOKEN": self.info["app_token"],
        }

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

    def close(self) -> None:
        self.client.close()
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def fakes() -> Iterator[tuple[TimedSlack, TimedModel]]:
    model = TimedModel()
    try:
        slack = TimedSlack()
    except BaseException:
        model.close()
        raise
    try:
        yield slack, model
    finally:
        slack.close()
        model.close()


# ---- the broker --------------------------------------------------------------------------------


def broker_env(slack: TimedSlack, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every whole-broker bench runs with: no debounce, no admission limit, enough runner
    slots for the largest load step, Slack's fallback surface (the final answer is a
    chat.postMessage) unless the caller turns native streaming on."""
    return {
        **slack.env,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "DEBOUNCE_MS": "0",
        "MAX_ACTIVE_RUNS": "0",
        "MAX_CONCURRENT_TURNS": "256",
        "SLACK_NATIVE_STREAMING": "false",
        "SLACK_INITIAL_THREAD_HISTORY_COUNT": "0",
        "HOUSEKEEPING_ENABLED": "false",
        **(extra or {}),
    }


def start_broker(
    data_root: Path, env: Mapping[str, str], *, replicas: Mapping[str, int] | None = None
) -> BrokerProcess:
    prefix = f"cbbench{uuid.uuid4().hex[:8]}"
    services = [s for s in ("ingress-slack", "orchestrator", "codex-runner", "http-api")]
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


# ---- the floor: the same fake model through one app-server, no broker ---------------------------


async def start_direct(codex: str, codex_home: Path, home: Path, overrides: Sequence[str] = ()) -> Direct:
    """runner_bench's bare client, started with the runner's own command line (apps and plugins
    disabled, the same -c overrides) so that the floor runs the same Codex configuration.
    `overrides`: extra `-c key=value`, as the runner gets them from CODEX_CONFIG_OVERRIDES."""
    import asyncio

    completed: dict[str, asyncio.Future[None]] = {}
    completed_at: dict[str, float] = {}  # thread id → when its last turn/completed arrived

    def on_notification(method: str, params: dict[str, Any]) -> None:
        if method == "turn/completed":
            completed_at[params.get("threadId", "")] = time.monotonic()
            future = completed.pop(params.get("threadId", ""), None)
            if future is not None and not future.done():
                future.set_result(None)

    command = [codex, "app-server"]
    for feature in APPS_FEATURES:
        command += ["--disable", feature]
    for override in (*ALWAYS_OVERRIDES, *overrides):
        command += ["-c", override]
    server = await AppServer.spawn(
        command,
        child_env(codex_home, home),
        codex_home,
        on_notification=on_notification,
        on_server_request=lambda *_: None,
        name="bench-floor",
    )
    await server.initialize("bench", "0", timeout_s=60)
    direct = Direct(server, completed)
    direct.completed_at = completed_at  # type: ignore[attr-defined]
    return direct

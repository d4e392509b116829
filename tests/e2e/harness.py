"""Run the whole broker as a user would (`codex-broker up`) for end-to-end tests.

`BrokerProcess` starts `codex-broker up` as a subprocess with the environment a test gives it,
waits until the expected services write heartbeats, lets the test kill a service (the
supervisor restarts it), and on `stop()` checks by PID that no process it started is left.
All output of `up` (every service's prefixed log lines) goes to a file; when a test fails inside
the `with` block, or the broker does not start or stop cleanly, its last lines are printed to
stderr so that pytest shows them.

Typical use (sync or async):

    from tests.e2e.harness import BrokerProcess

    @pytest.mark.e2e
    async def test_something(tmp_path, redis_url, key_prefix):
        env = {
            "SLACK_APP_TOKEN": "xapp-1-test", "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": f"http://127.0.0.1:{fake_slack.port}/api/",
        }
        async with BrokerProcess(
            data_root=tmp_path / "data", redis_url=redis_url, key_prefix=key_prefix, env=env
        ) as broker:
            ...  # drive the fakes; broker.keys / broker.redis_url / broker.http_api_port
            pid = broker.kill_service("orchestrator")            # SIGKILL by default
            await asyncio.to_thread(broker.wait_restarted, "orchestrator-1", pid)

    with BrokerProcess(data_root=tmp_path / "data") as broker:  # redis_url=None: embedded Redis
        print(broker.status_json())

Details:
- `redis_url=None` leaves REDIS_URL unset, so `up` starts its embedded Redis; the harness finds
  its URL in DATA_ROOT/redis/embedded.json. With a URL, give a unique `key_prefix` (the fixture).
- The children get a small, explicit environment: PATH, HOME, locale, TMPDIR, CODEX_BIN if set,
  then `env`. Proxy variables are dropped (NO_PROXY=127.0.0.1,localhost is set) so that loopback
  traffic to the fakes never goes through a proxy. `up` runs with cwd = `cwd` (default: the
  parent of DATA_ROOT), so no developer `.env` leaks in.
- METRICS_PORT_BASE and HTTP_API_PORT default to a free range of loopback ports.
- `services` is what must heartbeat before the start counts as done (default: all five, with
  `replicas` instances each); `worker=False` passes --no-worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from redis import Redis

from codex_broker.cli import embedded_redis
from codex_broker.cli.plan import canonical_service
from codex_broker.libs import paths
from codex_broker.libs.keys import DEFAULT_SHARD_COUNT, Keys
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_model import FakeModelClient, function_call_reply, text_reply, tool_outputs, user_texts
from tests.helpers import free_port

ALL_SERVICES: tuple[str, ...] = (
    "ingress-slack",
    "ingress-feishu",
    "ingress-web",
    "ingress-discord",
    "orchestrator",
    "codex-runner",
    "http-api",
)
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "CODEX_BIN", "TEST_REDIS_URL")
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_STARTED = re.compile(r"^\[up\]\s+started (\S+) \(pid (\d+)(?:, metrics :(\d+))?\)")
LOG_TAIL_LINES = 150
REPO_ROOT = Path(__file__).resolve().parents[2]


class BrokerError(AssertionError):
    """The broker did not start, did not stop, or left processes behind."""


def free_port_range(count: int, *, low: int = 20000, high: int = 32000, attempts: int = 200) -> int:
    """First port of `count` consecutive loopback ports that are free right now.

    Below Linux's ephemeral range (32768+), so outgoing connections and OS-assigned ports (the
    embedded Redis) do not take them between this check and the children binding them.
    """
    rng = uuid.uuid4().int
    for attempt in range(attempts):
        base = low + (rng + attempt * 7919) % (high - low - count)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise BrokerError(f"no {count} consecutive free ports found")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, sid) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(root: int) -> set[int]:
    """Every live process below `root` (by parent pid), found by scanning /proc."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def in_sessions(sessions: Iterable[int]) -> set[int]:
    """Live processes whose session id is one of `sessions` (a child's whole tree, even reparented)."""
    wanted = set(sessions)
    left = set()
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[0] != "Z" and stat[3] in wanted:
            left.add(pid)
    return left


class BrokerProcess:
    def __init__(
        self,
        *,
        data_root: Path,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
        key_prefix: str | None = None,
        services: Sequence[str] = ALL_SERVICES,
        replicas: Mapping[str, int] | None = None,
        worker: bool = True,
        log_path: Path | None = None,
        cwd: Path | None = None,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 60.0,
        stop_grace_s: float = 20.0,
    ) -> None:
        self.data_root = Path(data_root).resolve()
        self.extra_env = dict(env or {})
        self.given_redis_url = redis_url
        self.key_prefix = key_prefix or f"e{uuid.uuid4().hex[:10]}"
        self.services = tuple(services)
        self.replicas = {canonical_service(k): v for k, v in (replicas or {}).items()}
        self.worker = worker
        self.cwd = Path(cwd) if cwd else self.data_root.parent
        self.log_path = log_path or self.data_root.parent / f"broker-up-{self.key_prefix}.log"
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_api_port = 0
        self.http_web_port = 0
        self.metrics_port_base = 0
        self._redis: Redis | None = None
        self._redis_url: str | None = redis_url
        self._seen_pids: set[int] = set()

    # ---- lifecycle -------------------------------------------------------------------------
    def build_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        child_count = sum(self.replicas.get(s, 1) for s in (*ALL_SERVICES, "worker"))
        api_replicas = max(1, self.replicas.get("http-api", 1))
        base = free_port_range(child_count + api_replicas + 1)
        self.metrics_port_base = base
        self.http_api_port = int(self.extra_env.get("HTTP_API_PORT", base + child_count))
        # the web chat's port follows the http-api's (one port is enough: it has no replica ports)
        self.http_web_port = int(self.extra_env.get("HTTP_WEB_PORT", base + child_count + api_replicas))
        env.update(
            {
                "DATA_ROOT": str(self.data_root),
                "KEY_PREFIX": self.key_prefix,
                "METRICS_PORT_BASE": str(base),
                "HTTP_API_PORT": str(self.http_api_port),
                "HTTP_WEB_PORT": str(self.http_web_port),
                "UP_STOP_GRACE_S": str(self.stop_grace_s),
                "UP_RESTART_BACKOFF_INITIAL_S": "0.2",
                "UP_RESTART_BACKOFF_MAX_S": "2",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.given_redis_url:
            env["REDIS_URL"] = self.given_redis_url
        env.update(self.extra_env)
        for name in PROXY_ENV:
            if name not in self.extra_env:
                env.pop(name, None)
        return env

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "codex_broker.cli", "up"]
        if self.replicas:
            argv += ["--replicas", ",".join(f"{k}={v}" for k, v in self.replicas.items())]
        if not self.worker:
            argv.append("--no-worker")
        return argv

    def start(self) -> BrokerProcess:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = self.build_env()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_for_services(self.expected_counts(), timeout_s=self.start_timeout_s)
        except BaseException:
            self.dump_log("broker did not start")
            self._force_cleanup()
            raise
        return self

    def expected_counts(self) -> dict[str, int]:
        counts = {s: self.replicas.get(s, 1) for s in self.services}
        return {s: n for s, n in counts.items() if n > 0}

    def stop(self) -> None:
        """SIGTERM `up`, wait for it, then verify by PID that nothing it started is left."""
        if self.proc is None:
            return
        proc = self.proc
        tracked = self._tracked_pids()
        sessions = tracked | {proc.pid}  # `up` and each of its children lead their own session
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.dump_log("codex-broker up did not stop in time")
            self._force_cleanup()
            raise BrokerError(f"up (pid {proc.pid}) ignored SIGTERM for {self.stop_timeout_s}s") from exc
        finally:
            self._close_redis()
        left = self._left_behind(tracked, sessions)
        self.proc = None
        if left:
            described = {pid: _cmdline(pid) for pid in sorted(left)}
            self.dump_log("processes left behind")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise BrokerError(f"processes left behind after stop: {described}")
        if proc.returncode != 0:
            self.dump_log("non-zero exit")
            raise BrokerError(f"codex-broker up exited with {proc.returncode}")

    def _tracked_pids(self) -> set[int]:
        assert self.proc is not None
        self._seen_pids |= descendants(self.proc.pid)
        self._seen_pids |= {pid for pid, _ in self.started().values()}
        return set(self._seen_pids)

    def _left_behind(self, tracked: set[int], sessions: set[int]) -> set[int]:
        deadline = time.monotonic() + 10  # reparented orphans may need a moment to be reaped
        while True:
            left = {pid for pid in tracked | in_sessions(sessions) if _alive(pid) and self._ours(pid)}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def _ours(self, pid: int) -> bool:
        """Started by this broker: its environment names our KEY_PREFIX or DATA_ROOT (Codex and
        what it runs carry CODEX_HOME under DATA_ROOT). A PID of a killed child may be reused by
        an unrelated process (tests that kill often wrap the PID space): never count or kill it."""
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        return f"KEY_PREFIX={self.key_prefix}".encode() in environ or str(self.data_root).encode() in environ

    def _force_cleanup(self) -> None:
        if self.proc is None:
            return
        tracked = self._tracked_pids()
        for pid in {pid for pid in tracked | in_sessions(tracked) if self._ours(pid)}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._close_redis()
        self.proc = None

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.dump_log(f"test failed with {exc_type.__name__}")
            with contextlib.suppress(Exception):
                self.stop()
            self._force_cleanup()
            return
        self.stop()

    async def __aenter__(self) -> BrokerProcess:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)

    # ---- what is running ---------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def redis_url(self) -> str:
        if self._redis_url is None:
            state = self.data_root / "redis" / "embedded.json"
            try:
                raw = json.loads(state.read_text())
                url, owner = str(raw["url"]), int(raw["pid"])
            except (OSError, ValueError, KeyError) as exc:
                raise BrokerError(f"embedded Redis not up yet ({state})") from exc
            if self.proc is None or owner != self.proc.pid:  # left over from an earlier run
                raise BrokerError(f"embedded Redis of this broker not up yet ({state})")
            # embedded.json holds the URL without the password `up` keeps in DATA_ROOT/secrets
            self._redis_url = embedded_redis.authed_url(self.data_root, url)
        return self._redis_url

    @property
    def keys(self) -> Keys:
        shards = int(self.extra_env.get("SHARD_COUNT", DEFAULT_SHARD_COUNT))
        return Keys(prefix=self.key_prefix, shard_count=shards)

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        return self._redis

    def _close_redis(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()
            self._redis = None

    def heartbeats(self) -> list[dict[str, Any]]:
        client = self.redis()
        beats = []
        for key in client.scan_iter(match=self.keys.heartbeat_pattern(), count=500):
            raw = client.get(key)
            if raw is not None:
                with contextlib.suppress(ValueError):
                    beats.append(json.loads(raw))
        return sorted(beats, key=lambda b: (str(b.get("service")), str(b.get("instance"))))

    def started(self) -> dict[str, tuple[int, int | None]]:
        """Instance → (pid, metrics port) of its latest start, from the `[up] started` lines."""
        found: dict[str, tuple[int, int | None]] = {}
        for line in self.log_text().splitlines():
            match = _STARTED.match(line)
            if match:
                port = int(match.group(3)) if match.group(3) else None
                found[match.group(1)] = (int(match.group(2)), port)
        return found

    def metrics_port(self, instance: str) -> int:
        port = self.started().get(instance, (0, None))[1]
        if port is None:
            raise BrokerError(f"no metrics port known for {instance}")
        return port

    def wait_for_services(
        self, expected: Mapping[str, int], *, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """Until each service has at least its count of live heartbeats from children of `up`."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, int] = {}
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(f"codex-broker up exited with {self.proc.returncode} while starting")
            beats: list[dict[str, Any]] = []
            with contextlib.suppress(Exception):  # Redis not up yet
                beats = [b for b in self.heartbeats() if self._is_ours(b)]
            last = {}
            for beat in beats:
                last[str(beat.get("service"))] = last.get(str(beat.get("service")), 0) + 1
            if all(last.get(s, 0) >= n for s, n in expected.items()):
                return beats
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"timed out after {timeout_s}s: heartbeats {last}, expected {dict(expected)}"
                )
            time.sleep(0.1)

    def _is_ours(self, beat: Mapping[str, Any]) -> bool:
        pid = int(beat.get("pid") or 0)
        stat = _proc_stat(pid)
        return stat is not None and self.proc is not None and stat[1] == self.proc.pid

    def pid_of(self, name: str) -> int:
        """PID of a service instance ('orchestrator-2') or of the first instance of a service."""
        for beat in self.heartbeats():
            if (beat.get("instance") == name or beat.get("service") == name) and self._is_ours(beat):
                return int(beat["pid"])
        raise BrokerError(f"no live heartbeat of {name}")

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal one child of `up` (found by its heartbeat's pid); returns the pid signalled."""
        pid = self.pid_of(name)
        self._seen_pids.add(pid)
        os.kill(pid, sig)
        return pid

    def wait_restarted(self, instance: str, old_pid: int, *, timeout_s: float = 60.0) -> int:
        """Until `instance` heartbeats again from a new process; returns the new pid."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for beat in self.heartbeats():
                pid = int(beat.get("pid") or 0)
                if beat.get("instance") == instance and pid != old_pid and self._is_ours(beat):
                    return pid
            time.sleep(0.1)
        raise BrokerError(f"{instance} did not come back within {timeout_s}s")

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run another `codex-broker` command (status, doctor) against this broker."""
        env = self.build_env_for_cli()
        return subprocess.run(
            [sys.executable, "-m", "codex_broker.cli", *args],
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def build_env_for_cli(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update({"DATA_ROOT": str(self.data_root), "KEY_PREFIX": self.key_prefix})
        if self.given_redis_url:
            env["REDIS_URL"] = self.given_redis_url
        env.update(self.extra_env)
        return env

    def status_json(self) -> dict[str, Any]:
        done = self.cli("status", "--json")
        if done.returncode != 0:
            raise BrokerError(f"codex-broker status failed ({done.returncode}): {done.stdout}{done.stderr}")
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    # ---- logs ------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self, prefix: str) -> list[str]:
        """Lines of one child, e.g. log_lines('orchestrator-1'), without the prefix."""
        tag = f"[{prefix}]"
        return [line[len(tag) :].strip() for line in self.log_text().splitlines() if line.startswith(tag)]

    def dump_log(self, why: str) -> None:
        lines = self.log_text().splitlines()[-LOG_TAIL_LINES:]
        sys.stderr.write(f"\n---- {why}: last {len(lines)} lines of {self.log_path} ----\n")
        sys.stderr.write("\n".join(lines) + "\n---- end of broker log ----\n")


# ---- shared end-to-end setup -------------------------------------------------------------------
# What every platform's e2e module needs around `BrokerProcess`: the fake model as a process, a
# broker on the tests' Redis under its own key prefix, and workspace mode's scripted turns.


@contextlib.contextmanager
def fake_model_process(*args: str) -> Iterator[FakeModelClient]:
    """`python -m tests.fakes.fake_model` on a free loopback port (with `args`), until it
    answers; every suite that runs the broker as processes starts its fake model here."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_model", "--port", str(port), *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    client = FakeModelClient(port)
    try:
        deadline = time.monotonic() + 20
        while not client.ready():
            assert process.poll() is None and time.monotonic() < deadline, "fake model did not start"
            time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def e2e_broker(
    tmp_path_factory: Any, name: str, model: FakeModelClient, env: Mapping[str, str]
) -> Iterator[BrokerProcess]:
    """`codex-broker up` on the tests' Redis (a fresh key prefix, deleted afterwards) with a
    private DATA_ROOT whose Codex home talks to the fake model."""
    from tests.conftest import REDIS_URL

    data_root = tmp_path_factory.mktemp(name) / "data"
    config = write_codex_home(paths.codex_home(data_root), model.base_url)
    # the operator's own file, put in privately: what the broker creates must be private by itself
    for path, mode in ((data_root, 0o700), (config.parent, 0o700), (config, 0o600)):
        path.chmod(mode)
    prefix = f"e{uuid.uuid4().hex[:10]}"
    broker = BrokerProcess(
        data_root=data_root,
        redis_url=REDIS_URL,
        key_prefix=prefix,
        env={"OPENAI_API_KEY": FAKE_API_KEY, **env},
    )
    try:
        with broker:
            yield broker
    finally:
        client = Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


WORKSPACE_TASK = "TASK-e2e"  # the delegated prompt's marker: the task session's turns match it
WORKSPACE_TASK_ANSWER = "REPORT-E2E DONE"
WORKSPACE_OPERATOR_ANSWER = "Operator: the report is done."


def workspace_env(platform: str, home: str, root: Path) -> dict[str, str]:
    """Workspace mode with one home channel (every service reads the same two settings)."""
    return {"WORKSPACE_HOME_CHANNELS": f"{platform}:{home}", "WORKSPACE_ROOT": str(root)}


def workspace_root(tmp_path_factory: Any) -> Path:
    """A WORKSPACE_ROOT with the one project directory the scripted delegation runs in."""
    root: Path = tmp_path_factory.mktemp("workspaces")
    (root / "proj").mkdir()
    return root


def delegation_turns() -> tuple[dict[str, Any], ...]:
    """The model's side of one delegation: the operator (asked "please delegate the report")
    starts a task in `proj`; the task session tries a delegation tool itself (refused) and then
    answers; the operator, woken by the result, answers the home channel."""
    return (
        function_call_reply(
            "start_delegation",
            {"cwd": "proj", "prompt": f"{WORKSPACE_TASK}: write the report", "title": "the report"},
            match="please delegate",
        ),
        text_reply("Delegated it.", match="please delegate"),
        function_call_reply("start_delegation", {"cwd": "proj", "prompt": "again"}, match=WORKSPACE_TASK),
        text_reply(WORKSPACE_TASK_ANSWER, match=WORKSPACE_TASK),
        text_reply(WORKSPACE_OPERATOR_ANSWER, match="<delegation_results>"),
    )


def task_tool_outputs(model: FakeModelClient) -> list[str]:
    """What the task session's model got back from its own tool calls (the refusal)."""
    requests = [r for r in model.requests if any(WORKSPACE_TASK in t for t in user_texts(r))]
    return [o for r in requests for o in tool_outputs(r)]

"""Secret hygiene, end to end: planted secrets stay with the process that owns them.

Every secret setting gets a unique planted value that no token-shape pattern of the redactor
recognises (so only "never sent there" or "redacted by configured value" can keep it out of a
place). The whole broker runs as `codex-broker up` with every raw log on and LOG_LEVEL=DEBUG;
the fakes accept exactly the planted values (the fake model answers 401 to any other API key,
so the turns prove OPENAI_API_KEY reached Codex). One Slack session drives, through the real
Codex on the fake model:

1. a mention → `exec_command` `env > env-dump.txt` in the workspace (Codex's shell environment);
2. a follow-up → `curl` to the http-api with the session token read from the token file the
   developer instructions name (`$(cat …)`, so the token itself is in no command text):
   post-message, post-file (a workspace path), jobs/register of a script that runs
   `env > job-env.txt` and calls back `complete`; the callback starts a third turn;
3. a Feishu mention answered in a card.

Then, while every process is alive, `/proc/<pid>/environ` of every descendant of `up` (the
services, the rq work horses, the Codex app-server below the runner and anything below it);
after `up` stopped: every file under DATA_ROOT (logs of every service, raw logs, session and
job fan-out, workspaces, CODEX_HOME, job output), the captured stdout/stderr of `up`, every
Redis key under the test's KEY_PREFIX and every rq key of its job queue (all data types,
streams entry by entry — the audit trail's included — compressed rq payloads unpacked), what
left the broker (model requests, Slack and Feishu posts) and the audit trail's JSONL export as
the admin API hands it out (taken while the broker runs). `MAY_HOLD` below is the whole allowance.

Sandbox: the defaults, SANDBOX=workspace-write and NETWORK_ACCESS=true, set here explicitly: the
sealed session's `curl` reaches the http-api's session address (127.0.0.42 under `up`) through
Codex's managed proxy, the one way out the session's network has.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys, session_key_of
from tests.e2e import harness
from tests.e2e.harness import BrokerProcess, descendants
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_feishu import FakeFeishu
from tests.fakes.fake_model import FakeModelClient, text_reply, tool_call_reply
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process
from tests.helpers import wait_for
from tests.security.scan import (
    Blob,
    Counts,
    Hit,
    cmdline,
    environ,
    file_blobs,
    find,
    parent_of,
    redis_blobs,
    secrets_in_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

REPO_ROOT = Path(__file__).resolve().parents[2]

SECRET_SETTINGS = (
    "SLACK_APP_TOKEN",
    "SLACK_BOT_TOKEN",
    "FEISHU_APP_SECRET",
    "DISCORD_BOT_TOKEN",
    "OPENAI_API_KEY",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "BROKER_ADMIN_TOKEN",
)
CODEX_SECRETS = frozenset({"OPENAI_API_KEY", "GH_TOKEN", "GITHUB_TOKEN"})

# Which process (or file) may hold which planted secret; anything not listed holds none.
MAY_HOLD: dict[str, frozenset[str]] = {
    "up": frozenset(SECRET_SETTINGS),  # the launcher is given the operator's environment
    "ingress-slack": frozenset({"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"}),
    "ingress-feishu": frozenset({"FEISHU_APP_SECRET"}),
    "ingress-discord": frozenset({"DISCORD_BOT_TOKEN"}),
    "orchestrator": frozenset(),
    "codex-runner": CODEX_SECRETS,  # Codex auth + the GitHub token it hands to Codex
    "http-api": frozenset({"BROKER_ADMIN_TOKEN"}),
    "ingress-web": frozenset({"BROKER_ADMIN_TOKEN"}),  # the web chat's sign-in
    "worker": frozenset(),  # JOB_ENV_INCLUDE_GH_TOKEN is off (the default)
    "codex": CODEX_SECRETS,  # the app-server: the API key by design, GH_TOKEN for its shell
    # commands Codex runs (and the workspace env dump): the GitHub token, not the model API key
    "codex-shell": frozenset({"GH_TOKEN", "GITHUB_TOKEN"}),
    "job": frozenset(),  # background job scripts (and the job env dump)
}
# Positive checks: the planted values really are where the design puts them (so the scan works).
MUST_HOLD: dict[str, frozenset[str]] = {
    "ingress-slack": frozenset({"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"}),
    "ingress-feishu": frozenset({"FEISHU_APP_SECRET"}),
    "ingress-discord": frozenset({"DISCORD_BOT_TOKEN"}),
    "codex-runner": CODEX_SECRETS,
    "http-api": frozenset({"BROKER_ADMIN_TOKEN"}),
    "ingress-web": frozenset({"BROKER_ADMIN_TOKEN"}),
    "codex": frozenset({"OPENAI_API_KEY", "GH_TOKEN", "GITHUB_TOKEN"}),
    "codex-shell": frozenset({"GH_TOKEN", "GITHUB_TOKEN"}),
}
# `python -m <module>` → role (the worker's module first: it is inside http_api)
MODULE_ROLES = (
    ("codex_broker.cli", "up"),
    ("codex_broker.http_api.worker", "worker"),
    ("codex_broker.ingress_slack", "ingress-slack"),
    ("codex_broker.ingress_web", "ingress-web"),
    ("codex_broker.ingress_feishu", "ingress-feishu"),
    ("codex_broker.ingress_discord", "ingress-discord"),
    ("codex_broker.orchestrator", "orchestrator"),
    ("codex_broker.codex_runner", "codex-runner"),
    ("codex_broker.http_api", "http-api"),
)
# a child of a role that is not itself a service
CHILD_ROLES = {"codex-runner": "codex", "codex": "codex-shell", "codex-shell": "codex-shell", "worker": "job"}

CHANNEL, USER = "C4242", "U1"
FEISHU_CHAT = "oc_hygiene"
TIMEOUT_S = 120.0


def plant() -> dict[str, str]:
    """A unique value per secret setting, shaped like no known token (no xox/xapp/sk-/ghp_)."""
    run = uuid.uuid4().hex[:8]
    return {
        name: f"planted{name.replace('_', '').lower()}{run}{uuid.uuid4().hex}" for name in SECRET_SETTINGS
    }


# ---- fakes ------------------------------------------------------------------------------------


@pytest.fixture
def planted() -> dict[str, str]:
    return plant()


@pytest.fixture
def fake_model(planted: dict[str, str]) -> Iterator[FakeModelClient]:
    """The fake model as a process; it answers 401 unless the planted OPENAI_API_KEY is sent."""
    with harness.fake_model_process("--api-key", planted["OPENAI_API_KEY"]) as client:
        yield client


@pytest.fixture
def fake_slack(planted: dict[str, str]) -> Iterator[FakeSlackProcess]:
    tokens = ("--bot-token", planted["SLACK_BOT_TOKEN"], "--app-token", planted["SLACK_APP_TOKEN"])
    with start_fake_slack_process(*tokens) as slack:
        slack.client.add_user(USER, "alice", display_name="Alice")
        yield slack


@pytest.fixture
def fake_discord(planted: dict[str, str]) -> Iterator[FakeDiscord]:
    with FakeDiscord(token=planted["DISCORD_BOT_TOKEN"]) as server:  # 401 to any other token
        yield server


@pytest.fixture
def fake_feishu(planted: dict[str, str]) -> Iterator[FakeFeishu]:
    server = FakeFeishu(app_secret=planted["FEISHU_APP_SECRET"]).start()
    yield server
    server.stop()


# ---- driving ----------------------------------------------------------------------------------


@dataclass
class World:
    broker: BrokerProcess
    slack: FakeSlackProcess
    feishu: FakeFeishu
    discord: FakeDiscord
    model: FakeModelClient
    secrets: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def bot(self) -> str:
        return str(self.slack.info["bot_user_id"])

    def thread_text(self, thread_ts: str) -> str:
        """Everything the bot showed in the thread: posts, updates and native streams."""
        streams = {ts: s for ts, s in self.slack.client.streams().items() if s["thread_ts"] == thread_ts}
        parts = [
            m.get("text", "") + json.dumps(m.get("blocks") or [])
            for m in self.slack.client.messages(channel=CHANNEL, thread_ts=thread_ts, from_bot=True)
            if not m.get("deleted") and m["ts"] not in streams
        ]
        parts += [s["text"] for s in streams.values()]
        return "\n".join(parts)

    def session(self, root: str) -> dict[str, str]:
        client = Redis.from_url(self.broker.redis_url)
        try:
            raw = client.hgetall(self.broker.keys.session(session_key_of("slack", CHANNEL, root)))
        finally:
            client.close()
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]

    def tool_outputs(self) -> str:
        found = []
        for request in self.model.requests:
            for item in request.get("input") or []:
                if item.get("type") in ("function_call_output", "custom_tool_call_output"):
                    found.append(str(item.get("output"))[:600])
        return "\n---\n".join(dict.fromkeys(found))


async def until(probe: Any, what: str, world: World | None = None, timeout_s: float = TIMEOUT_S) -> Any:
    try:
        return await wait_for(probe, timeout_s=timeout_s, interval_s=0.2, what=what)
    except AssertionError as exc:
        if world is not None:  # what Codex's commands answered is the first thing to look at
            raise AssertionError(f"{exc}\ntool outputs seen by the model:\n{world.tool_outputs()}") from None
        raise


def session_token(world: World) -> tuple[str, str]:
    """The session's token file and API base, as the developer instructions name them."""
    text = json.dumps(world.model.requests)
    token_file = re.search(r"BROKER_SESSION_TOKEN_FILE=(/[^\s\\\"`]+)", text)
    base = re.search(r"BROKER_API_BASE=(http://[^\s\\\"`]+)", text)
    assert token_file and base, "no session token file / API base in the developer instructions"
    return token_file.group(1), base.group(1).rstrip("/")


def curl_json(base: str, token_file: str, route: str, body: dict[str, Any]) -> str:
    """A shell command posting `body` as JSON (through a quoted heredoc: no shell quoting issues).

    No `rm` of the request file: Codex rejects `rm -f` as dangerous under approval policy never."""
    return (
        f"cat > request.json <<'JSON'\n{json.dumps(body)}\nJSON\n"
        f'curl -sS -m 30 -H "Authorization: Bearer $(cat {token_file})" -H "content-type: application/json" '
        f"--data-binary @request.json {base}{route}; echo"
    )


JOB_SCRIPT = """\
sleep 1
env > "$SESSION_WORKSPACE/job-env.txt"
curl -sS -m 30 -X POST -H "x-job-token: $JOB_TOKEN" -H "content-type: application/json" \\
  -d '{"summary": "hygiene-job-finished"}' "$BROKER_API_BASE/jobs/$JOB_ID/complete"
"""


async def drive_slack_session(world: World) -> Path:
    """Three turns: env dump; post-message + post-file + job; the job's callback. → the workspace"""
    world.model.script(
        tool_call_reply("env > env-dump.txt && echo env-dumped", match="hygiene-step-one"),
        text_reply("step one done", match="hygiene-step-one"),
    )
    sent = world.slack.client.user_message(CHANNEL, USER, f"<@{world.bot}> hygiene-step-one: dump env")
    await until(lambda: "step one done" in world.thread_text(sent.ts), "the first answer", world)
    workspace = Path(world.session(sent.ts)["workspace"])
    assert (workspace / "env-dump.txt").is_file(), world.tool_outputs()

    token, base = session_token(world)
    coords = {"platform": "slack", "conversation_id": CHANNEL, "root_message_id": sent.ts}
    post = {**coords, "text": "hello from codex via the api", "kind": "progress"}
    upload = {**coords, "file_path": "report.txt", "initial_comment": "hygiene report"}
    job = {**coords, "script": JOB_SCRIPT, "cwd": str(workspace), "timeoutSeconds": 120}
    world.model.script(
        tool_call_reply(curl_json(base, token, "/chat/post-message", post), match="hygiene-step-two"),
        tool_call_reply(
            "printf 'nothing secret here\\n' > report.txt && "
            + curl_json(base, token, "/chat/post-file", upload),
            match="hygiene-step-two",
        ),
        tool_call_reply(curl_json(base, token, "/jobs/register", job), match="hygiene-step-two"),
        text_reply("step two done", match="hygiene-step-two"),
        text_reply("job noted", match="hygiene-job-finished"),
    )
    world.slack.client.user_message(CHANNEL, USER, "hygiene-step-two: use the API", thread_ts=sent.ts)
    await until(lambda: "step two done" in world.thread_text(sent.ts), "the second answer", world)
    await until(lambda: "hello from codex via the api" in world.thread_text(sent.ts), "the API's post", world)
    await until(
        lambda: any(u["filename"] == "report.txt" for u in world.slack.client.uploads()), "the upload", world
    )
    await until(lambda: (workspace / "job-env.txt").is_file(), "the job's env dump", world)
    await until(lambda: "job noted" in world.thread_text(sent.ts), "the turn the job callback started", world)
    await until(lambda: idle(world, session_key_of("slack", CHANNEL, sent.ts)), "the session idle", world)
    return workspace


def idle(world: World, session_key: str) -> bool:
    client = Redis.from_url(world.broker.redis_url)
    try:
        state = client.hget(world.broker.keys.session_state(session_key), "state")
    finally:
        client.close()
    return state in (None, b"idle")


async def drive_feishu_session(world: World) -> None:
    world.model.script(text_reply("feishu answered", match="hygiene-feishu"))
    world.feishu.push_message(chat_id=FEISHU_CHAT, text="hygiene-feishu: hello", mention_bot=True)

    def answered() -> bool:
        return any("feishu answered" in json.dumps(card) for card in world.feishu.cards())

    await until(answered, "the Feishu answer card", world)


async def drive_discord_session(world: World) -> None:
    world.model.script(text_reply("discord answered", match="hygiene-discord"))
    discord = world.discord
    sent = discord.user_message(discord.channel_id, "alice", "hygiene-discord: hello", mention=True)

    def answered() -> bool:
        return any("discord answered" in m["content"] for m in discord.bot_messages(sent["id"]))

    await until(answered, "the Discord answer", world)


# ---- scanning ---------------------------------------------------------------------------------


def process_roles(root: int) -> dict[int, str]:
    """Every live process from `up` down, with its role (service, codex, codex-shell, job, ...)."""
    pids = sorted({root, *descendants(root)})
    roles: dict[int, str] = {}

    def role_of(pid: int) -> str:
        if pid in roles:
            return roles[pid]
        argv = cmdline(pid)
        for module, role in MODULE_ROLES:
            if module in argv:
                roles[pid] = role
                return role
        parent = parent_of(pid)
        parent_role = role_of(parent) if parent in pids and parent is not None else "outside"
        roles[pid] = CHILD_ROLES.get(parent_role, f"child of {parent_role}")
        return roles[pid]

    for pid in pids:
        role_of(pid)
    return roles


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    table: list[str] = field(default_factory=list)

    def check(self, role: str, where: str, held: Mapping[str, Any]) -> None:
        allowed = MAY_HOLD.get(role, frozenset())
        for name in sorted(held):
            if name not in allowed:
                self.violations.append(f"{name} found in {where} (role {role}): {held[name]}")
        self.table.append(f"{role:<15} {where:<60} {', '.join(sorted(held)) or '-'}")


def scan_processes(root: int, secrets: Mapping[str, str], findings: Findings, counts: Counts) -> set[str]:
    seen_roles = set()
    for pid, role in sorted(process_roles(root).items(), key=lambda item: (item[1], item[0])):
        env = environ(pid)
        if env is None:
            continue
        counts.processes += 1
        seen_roles.add(role)
        held = secrets_in_env(env, secrets)
        argv = " ".join(cmdline(pid))
        findings.check(role, f"pid {pid} {argv[:55]}", held)
        for name, value in secrets.items():  # a command line is readable by every local user
            if value in argv:
                findings.violations.append(f"{name} on the command line of pid {pid} ({role})")
        missing = MUST_HOLD.get(role, frozenset()) - set(held)
        if missing:
            findings.violations.append(
                f"{role} (pid {pid}) lacks {sorted(missing)}: the design gives it these"
            )
    return seen_roles


def file_role(path: Path, workspace: Path) -> str:
    if path == workspace / "env-dump.txt":
        return "codex-shell"
    if path == workspace / "job-env.txt":
        return "job"
    return "file"


def group_hits(hits: list[Hit]) -> dict[str, dict[str, list[str]]]:
    """where → secret → [where] (the shape Findings.check takes)."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for hit in hits:
        grouped.setdefault(hit.where, {}).setdefault(hit.secret, []).append(hit.where)
    return grouped


def outside_blobs(world: World) -> list[Blob]:
    """What left the broker: model requests, Slack posts/uploads/streams, Feishu messages/cards."""
    client = world.slack.client
    return [
        Blob("fake model requests", json.dumps(world.model.requests).encode()),
        Blob("fake Slack messages", json.dumps(client.messages()).encode()),
        Blob("fake Slack streams", json.dumps(client.streams()).encode()),
        Blob("fake Slack uploads", b"".join(u["content"] for u in client.uploads())),
        Blob(
            "fake Slack uploads meta", json.dumps([{**u, "content": ""} for u in client.uploads()]).encode()
        ),
        Blob("fake Feishu messages", json.dumps(world.feishu.bot_messages()).encode()),
        Blob("fake Feishu cards", json.dumps(world.feishu.cards()).encode()),
        Blob("fake Discord messages", json.dumps(world.discord.messages).encode()),
        Blob("fake Discord interactions", json.dumps(world.discord.interactions).encode()),
    ]


def audit_export(broker: BrokerProcess, admin_token: str) -> bytes:
    """The admin API's JSONL export of the audit trail, as an operator downloads it."""
    url = f"http://127.0.0.1:{broker.http_api_port}/admin/api/audit/export"
    response = httpx.get(url, headers={"x-admin-token": admin_token}, timeout=30)
    response.raise_for_status()
    return response.content


def redis_patterns(keys: Keys, jobs: list[str]) -> list[str]:
    """The test's keys, and rq's keys of its queue and of its jobs (rq keys carry no prefix)."""
    return [f"{keys.prefix}:*", f"rq:*{keys.rq_queue_name}*", *(f"rq:*{job}*" for job in jobs)]


def job_ids(redis: Redis, keys: Keys) -> list[str]:
    client: Any = redis
    kind = client.type(keys.jobs_index)
    if kind == b"zset":
        return [m.decode() for m in client.zrange(keys.jobs_index, 0, -1)]
    if kind == b"set":
        return [m.decode() for m in client.smembers(keys.jobs_index)]
    return []


def delete_keys(client: Redis, patterns: list[str]) -> None:
    for pattern in patterns:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


# Credentials the broker makes or receives at run time, and the only places each may appear.
def session_token_place(where: str) -> bool:
    # only its own 0600 file: no instructions, rollout, RunRequest, log or model request holds it
    return where.endswith("/.broker-api-token")


DERIVED_PLACES = {
    "session token": session_token_place,
    "job token": lambda where: where.endswith("/job-env.txt"),  # the job's own environment
    "feishu tenant token": lambda where: False,  # only in ingress-feishu's memory
}


def derived_secrets(world: World, workspace: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    token_file, _ = session_token(world)
    found["session token"] = Path(token_file).read_text().strip()
    match = re.search(r"^JOB_TOKEN=(\S+)$", (workspace / "job-env.txt").read_text(), re.M)
    assert match, "no JOB_TOKEN in the job's environment"
    found["job token"] = match.group(1)
    tenant = sorted(world.feishu.state.tokens)
    assert tenant, "ingress-feishu never fetched a tenant token"
    found["feishu tenant token"] = tenant[-1]
    return found


def check_derived(derived: dict[str, str], hits: list[Hit], findings: Findings) -> list[str]:
    lines = []
    for name in derived:
        places = sorted({h.where for h in hits if h.secret == name})
        lines.append(f"  {name}: {len(places)} places")
        for where in places:
            allowed = DERIVED_PLACES[name](where)
            lines.append(f"    {'ok ' if allowed else 'BAD'} {where}")
            if not allowed:
                findings.violations.append(f"{name} found in {where}")
    return lines


def log_dirs(logs: Path) -> dict[str, int]:
    """Files per log directory: each service, raw/<kind>, sessions, jobs (what the scan covered)."""
    found: dict[str, int] = {}
    for path in logs.rglob("*"):
        if path.is_file():
            parts = path.relative_to(logs).parts
            top = "/".join(parts[:2]) if parts[0] == "raw" else parts[0]
            if parts[0] == "sessions" and "raw" in parts:
                top = "sessions/*/raw"
            found[top] = found.get(top, 0) + 1
    return dict(sorted(found.items()))


def print_report(counts: Counts, findings: Findings, derived_lines: list[str], logs: dict[str, int]) -> None:
    lines = [
        "",
        "==== secret hygiene scan ====",
        f"files: {counts.files} ({counts.file_bytes} bytes: DATA_ROOT and the output of up)",
        f"log files by directory: {logs}",
        f"redis: {counts.redis_keys} keys {counts.by_type}, {counts.redis_entries} values/fields/entries",
        f"processes: {counts.processes} environments; outside the broker: {counts.other} records",
        "",
        f"{'role':<15} {'where':<60} planted secrets held",
        *findings.table,
        "",
        "derived credentials (made or received at run time), where they appear:",
        *derived_lines,
    ]
    if findings.violations:
        lines += ["", "VIOLATIONS:", *findings.violations]
    print("\n".join(lines))


# ---- the test ---------------------------------------------------------------------------------


def broker_env(
    planted: dict[str, str], slack: FakeSlackProcess, feishu: FakeFeishu, discord: FakeDiscord
) -> dict[str, str]:
    return {
        "DISCORD_API_BASE_URL": discord.api_url,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        **slack.env,  # SLACK_API_URL and the planted Slack tokens
        **{name: planted[name] for name in SECRET_SETTINGS if not name.startswith("SLACK_")},
        "FEISHU_APP_ID": feishu.app_id,
        "FEISHU_DOMAIN": feishu.url,
        "LOG_RAW_SLACK_EVENTS": "true",
        "LOG_RAW_FEISHU_EVENTS": "true",
        "LOG_RAW_CODEX_RPC": "true",
        "LOG_RAW_HTTP_REQUESTS": "true",
        "LOG_LEVEL": "DEBUG",  # the chattiest logs: every library's debug lines are redacted too
        "DEBOUNCE_MS": "50",
        "MESSAGE_DURING_RUN": "queue",  # the job's callback waits for the turn that registered it
        "SANDBOX": "workspace-write",
        "NETWORK_ACCESS": "true",  # the default, pinned: Codex's shell must reach the http-api
        "JOB_WORKERS": "1",
    }


async def test_planted_secrets_stay_with_their_owners(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    planted: dict[str, str],
    fake_model: FakeModelClient,
    fake_slack: FakeSlackProcess,
    fake_feishu: FakeFeishu,
    fake_discord: FakeDiscord,
) -> None:
    data_root = tmp_path / "data"
    write_codex_home(paths.codex_home(data_root), fake_model.base_url)
    assert fake_slack.env["SLACK_BOT_TOKEN"] == planted["SLACK_BOT_TOKEN"]
    env = broker_env(planted, fake_slack, fake_feishu, fake_discord)
    broker = BrokerProcess(data_root=data_root, redis_url=redis_url, key_prefix=key_prefix, env=env)
    world = World(
        broker=broker,
        slack=fake_slack,
        feishu=fake_feishu,
        discord=fake_discord,
        model=fake_model,
        secrets=planted,
    )
    findings, counts = Findings(), Counts()
    client = Redis.from_url(redis_url)
    jobs: list[str] = []
    try:
        async with broker:
            await asyncio.to_thread(fake_slack.client.wait_connected, 60)
            await until(lambda: fake_feishu.connected() >= 1, "the Feishu long connection")
            await asyncio.to_thread(fake_discord.wait_connected, 60)
            workspace = await drive_slack_session(world)
            await drive_feishu_session(world)
            await drive_discord_session(world)
            audit_jsonl = await asyncio.to_thread(audit_export, broker, planted["BROKER_ADMIN_TOKEN"])
            roles = await asyncio.to_thread(scan_processes, broker.pid, planted, findings, counts)
        services = {
            "up",
            "ingress-slack",
            "ingress-feishu",
            "ingress-discord",
            "orchestrator",
            "codex-runner",
            "http-api",
            "worker",
        }
        assert services <= roles, f"processes found: {sorted(roles)}"
        assert "codex" in roles, f"no Codex app-server found below the runner: {sorted(roles)}"
        jobs = job_ids(client, broker.keys)
        assert jobs, "no job registered"

        blobs = [
            *file_blobs(data_root, counts),
            *file_blobs(broker.log_path, counts),  # everything `up` and its children printed
            *redis_blobs(client, redis_patterns(broker.keys, jobs), counts),
        ]
        outside = [*outside_blobs(world), Blob("audit trail export (JSONL)", audit_jsonl)]
        kinds = {json.loads(line)["kind"] for line in audit_jsonl.decode().splitlines()}
        assert {"turn", "command", "file"} <= kinds, f"the audit trail lacks records: {kinds}"
        assert client.xlen(broker.keys.audit_stream), "no audit stream among the Redis keys scanned"
        counts.other = len(outside)
        for where, held in group_hits(find([*blobs, *outside], planted)).items():
            role = file_role(Path(where), workspace) if where.startswith("/") else "file"
            findings.check(role, where, held)
        dump = (workspace / "env-dump.txt").read_text()
        missing = [name for name in MUST_HOLD["codex-shell"] if planted[name] not in dump]
        assert not missing, f"env-dump.txt lacks {missing}: is it really Codex's shell environment?"

        derived = derived_secrets(world, workspace)
        derived_lines = check_derived(derived, find([*blobs, *outside], derived), findings)
        logs = log_dirs(data_root / "logs")
        print_report(counts, findings, derived_lines, logs)
        assert logs.get("raw/codex-rpc") and logs.get("sessions") and logs.get("jobs"), logs
        assert not findings.violations, "secrets outside their owner:\n" + "\n".join(findings.violations)
    finally:
        delete_keys(client, redis_patterns(broker.keys, jobs))
        client.close()

"""The chaos run shared by tests/chaos/test_chaos.py (CI size) and bench/chaos_bench.py (larger).

N mentions over M Slack threads go through the fake Slack while a seeded random service process
(orchestrator, codex-runner, ingress-slack or http-api replica) is SIGKILLed every few seconds
(`codex-broker up` restarts it) and the test's own Redis (AOF, fsync always) is SIGKILLed and
restarted once. Codex is real; the fake model echoes each turn's input, so every answer carries the
unique tokens (`tok-<thread>-<n>`) of the mentions it answers.

The verdict, per thread, from what the fake Slack shows at the end:
- final answers = the bot's posts that start with the echo; each mention's token must appear in
  exactly one of them (a turn may answer several queued mentions at once);
- tokens in the order the broker accepted the mentions (their order on the inbound stream): the
  order they were sent, except that a mention the fake Slack re-delivered after a later one of its
  thread was accepted (its first delivery died with an ingress) comes after that one — the order
  docs/architecture.md defines;
- a mention whose turn died with its runner counts as "told" when the thread carries the
  orchestrator's notice for that run instead of an answer (the run's input is read back from the
  runs stream), never silently lost.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from tests.fakes.fake_model import FakeModelClient
from tests.replicas.support import (
    FULL_REPLICAS,
    RUNNER_GONE_TEXT,
    PrivateRedis,
    SlackWorld,
    is_final_answer,
    slack_world,
    tokens_in,
    wait_until,
)

FAILED_PREFIX = "this turn failed"  # the orchestrator's "Sorry, this turn failed: <reason>"
KILLABLE = tuple(f"{service}-{n}" for service, count in FULL_REPLICAS.items() for n in range(1, count + 1))
# Faster failure detection than the defaults, so a CI-sized run sees several takeovers.
CHAOS_ENV = {
    "MESSAGE_DURING_RUN": "queue",
    "DEBOUNCE_MS": "200",
    "SHARD_LEASE_MS": "4000",
    "SHARD_RENEW_INTERVAL_S": "1",
    "RECONCILE_INTERVAL_S": "1",
    "CLAIM_IDLE_MS": "5000",
    "UP_RESTART_BACKOFF_INITIAL_S": "0.5",
    "UP_RESTART_BACKOFF_MAX_S": "2",
}


@dataclass
class ChaosConfig:
    mentions: int = 24
    threads: int = 6
    seed: int = 1234
    kill_every_s: tuple[float, float] = (2.0, 4.0)
    send_gap_s: tuple[float, float] = (0.3, 2.5)
    redis_restart_after_s: float = 12.0
    redis_down_s: float = 1.5
    settle_timeout_s: float = 150.0


@dataclass
class ChaosReport:
    mentions: int = 0
    threads: int = 0
    replies: int = 0
    answered_mentions: int = 0
    told_lost_mentions: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    redis_restarts: int = 0
    service_restarts: int = 0
    lost_run_notices: int = 0
    other_notices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dead_letters: int = 0
    unsettled: str = ""
    threads_detail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.out_of_order)

    def table(self) -> str:
        rows = [
            ("mentions", self.mentions),
            ("threads", self.threads),
            ("final replies", self.replies),
            ("mentions answered", self.answered_mentions),
            ("mentions told their turn was lost", self.told_lost_mentions),
            ("mentions missing", len(self.missing)),
            ("duplicate answers", len(self.duplicates)),
            ("threads out of order", len(self.out_of_order)),
            ("SIGKILLs", sum(self.kills.values())),
            ("  by service", ", ".join(f"{k}={v}" for k, v in sorted(self.kills.items())) or "-"),
            ("service restarts (by up)", self.service_restarts),
            ("redis restarts", self.redis_restarts),
            ("'runner stopped' notices", self.lost_run_notices),
            ("other failure notices", len(self.other_notices)),
            ("dead letters", self.dead_letters),
            ("wall time s", f"{self.seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class Killer(threading.Thread):
    """SIGKILLs a random service replica every few seconds until stopped; restarts Redis once."""

    def __init__(
        self, world: SlackWorld, redis: PrivateRedis, config: ChaosConfig, report: ChaosReport
    ) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.world = world
        self.redis = redis
        self.config = config
        self.report = report
        self.random = random.Random(config.seed ^ 0x5EED)
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        started = time.monotonic()
        redis_done = False
        while not self.stopped.wait(self.random.uniform(*self.config.kill_every_s)):
            if not redis_done and time.monotonic() - started >= self.config.redis_restart_after_s:
                redis_done = True
                self.redis.restart(self.config.redis_down_s)
                self.report.redis_restarts += 1
                continue
            target = self.random.choice(KILLABLE)
            try:
                self.world.broker.kill_service(target, signal.SIGKILL)
                self.report.kills[target.rsplit("-", 1)[0]] += 1
            except Exception as exc:  # not up right now (just killed, or Redis down): next time
                self.errors.append(f"{target}: {exc}")

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def thread_channel(index: int) -> str:
    return f"C9{index:02d}"


def run_chaos(root: Path, model: FakeModelClient, config: ChaosConfig, log: Any = print) -> ChaosReport:
    report = ChaosReport(mentions=config.mentions, threads=config.threads)
    rng = random.Random(config.seed)
    started = time.monotonic()
    with (
        PrivateRedis(root / "redis") as redis,
        slack_world(
            root, model, redis_url=redis.url, env=CHAOS_ENV, log_path=root / "broker-up.log", cleanup=False
        ) as world,
    ):
        roots: dict[int, str] = {}
        sent: dict[int, list[str]] = {i: [] for i in range(config.threads)}
        plan = _plan(config, rng)
        killer = Killer(world, redis, config, report)
        killer.start()
        try:
            for thread, seq in plan:
                token = f"tok-T{thread}-{seq}"
                _send(world, thread, token, roots, log)
                sent[thread].append(token)
                time.sleep(rng.uniform(*config.send_gap_s))
            log(f"all {config.mentions} mentions sent after {time.monotonic() - started:.1f}s; settling")
            try:
                wait_until(
                    lambda: _settled(world, roots, sent),
                    config.settle_timeout_s,
                    "every mention answered or told",
                    interval_s=1.0,
                )
            except AssertionError as exc:
                report.unsettled = str(exc)
                log(f"NOT SETTLED: {exc}")
        finally:
            killer.stop()
        time.sleep(3)  # late duplicates would show up now
        _judge(world, roots, sent, report)
        report.service_restarts = sum(
            1 for line in world.broker.log_text().splitlines() if "died unexpectedly" in line
        )
        report.dead_letters = _dead_letters(world)
        report.seconds = time.monotonic() - started
        if killer.errors:
            log(f"kills skipped: {len(killer.errors)} (target not up at that moment)")
    return report


def _plan(config: ChaosConfig, rng: random.Random) -> list[tuple[int, int]]:
    """Which thread each mention goes to, in a seeded random sending order (even split)."""
    counts = [
        config.mentions // config.threads + (1 if i < config.mentions % config.threads else 0)
        for i in range(config.threads)
    ]
    order = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(order)
    next_seq = [0] * config.threads
    plan = []
    for thread in order:
        next_seq[thread] += 1
        plan.append((thread, next_seq[thread]))
    return plan


def _send(world: SlackWorld, thread: int, token: str, roots: dict[int, str], log: Any) -> None:
    """A mention; retried if the fake did not take it (it is up all along, so this stays rare)."""
    channel = thread_channel(thread)
    for attempt in range(3):
        try:
            if thread not in roots:
                roots[thread] = world.mention(channel, "U1", f"{token} please echo").ts
            else:
                world.mention(channel, "U1", f"{token} please echo", thread_ts=roots[thread])
            return
        except OSError as exc:
            log(f"sending {token} failed ({exc}); attempt {attempt + 1}")
            time.sleep(0.5)
    raise AssertionError(f"could not send {token} to the fake Slack")


def _accepted_order(world: SlackWorld) -> list[str]:
    """Every mention's token in the order the broker accepted it: its first entry on the inbound
    streams (one stream per shard; a thread's session is on one shard, so within a thread the
    entry ids order the acceptances)."""
    keys = world.broker.keys
    first: dict[str, bytes] = {}
    for shard in range(keys.shard_count):
        for entry_id, fields in world.redis().xrange(keys.inbound_stream(shard)):
            for token in tokens_in(fields.get(b"data", b"").decode("utf-8", "replace")):
                first.setdefault(token, entry_id)
    return sorted(first, key=lambda token: tuple(int(part) for part in first[token].split(b"-")))


def _thread_messages(world: SlackWorld, thread: int, roots: dict[int, str]) -> list[dict[str, Any]]:
    return world.bot_messages(thread_channel(thread), roots[thread])


def _settled(world: SlackWorld, roots: dict[int, str], sent: dict[int, list[str]]) -> bool:
    """Every thread idle with nothing queued, and every token either answered or in a lost run."""
    lost = _lost_tokens(world, roots)
    for thread, tokens in sent.items():
        if thread not in roots:
            continue
        messages = _thread_messages(world, thread, roots)
        answered = {t for m in messages if is_final_answer(m) for t in tokens_in(m["text"])}
        if any(t not in answered and t not in lost for t in tokens):
            return False
        state = world.state(thread_channel(thread), roots[thread])
        if state.get("state", "idle") != "idle":
            return False
    return True


def _lost_tokens(world: SlackWorld, roots: dict[int, str]) -> set[str]:
    """Tokens of runs that ended without an answer in a thread that says so (a runner died under
    them, or another failure: the latter are listed as `other_notices` and fail the test)."""
    lost: set[str] = set()
    client = world.redis()
    for thread, root in roots.items():
        messages = _thread_messages(world, thread, {thread: root})
        if not any(FAILED_PREFIX in str(m.get("text", "")) for m in messages):
            continue
        for run_id, tokens in _runs_of(world, client, thread_channel(thread), root).items():
            outcome = world.run(run_id).get("status", "")
            if outcome != "completed":
                lost.update(tokens)
    return lost


def _runs_of(world: SlackWorld, client: Redis, channel: str, root: str) -> dict[str, list[str]]:
    """run id → tokens in its input, for one session, from the runs stream."""
    session_key = world.session_key(channel, root)
    found: dict[str, list[str]] = {}
    entries: Any = client.xrange(world.broker.keys.runs_stream)
    for _, fields in entries:
        data = json.loads(fields[b"data"])
        if data.get("session_key") == session_key:
            text = " ".join(str(i.get("text") or "") for i in data.get("input") or [])
            found.setdefault(data["run_id"], tokens_in(text))
    return found


def _judge(world: SlackWorld, roots: dict[int, str], sent: dict[int, list[str]], report: ChaosReport) -> None:
    lost = _lost_tokens(world, roots)
    accepted = _accepted_order(world)
    for thread, tokens in sent.items():
        if thread not in roots:
            report.missing.extend(tokens)
            continue
        messages = _thread_messages(world, thread, roots)
        finals = [m for m in messages if is_final_answer(m)]
        report.replies += len(finals)
        seen = [t for m in finals for t in tokens_in(m["text"])]
        counts = Counter(seen)
        report.duplicates.extend(t for t, n in counts.items() if n > 1)
        report.answered_mentions += sum(1 for t in tokens if counts[t] == 1)
        report.told_lost_mentions += sum(1 for t in tokens if counts[t] == 0 and t in lost)
        report.missing.extend(t for t in tokens if counts[t] == 0 and t not in lost)
        state = world.state(thread_channel(thread), roots[thread])
        notices = [
            str(m.get("text", ""))[:80]
            for m in messages
            if not is_final_answer(m) and not str(m.get("text", "")).startswith(":")
        ]
        report.threads_detail.append(
            f"thread {thread} root {roots[thread]}: sent {tokens}; "
            f"answers {[tokens_in(m['text']) for m in finals]}; "
            f"lost {sorted(t for t in tokens if t in lost)}; state {state}; notices {notices}"
        )
        groups = [[t for t in tokens_in(m["text"]) if t in tokens] for m in finals]
        if not answers_follow_acceptance(groups, accepted):
            mine = [t for t in accepted if t in tokens]
            report.out_of_order.append(f"thread {thread}: sent {tokens}, accepted {mine}, answered {groups}")
        for message in messages:
            text = str(message.get("text") or "")
            if RUNNER_GONE_TEXT in text:
                report.lost_run_notices += 1
            elif FAILED_PREFIX in text or (
                not is_final_answer(message) and not text.startswith(":") and _is_failure_notice(text)
            ):
                report.other_notices.append(text[:200])


def answers_follow_acceptance(groups: list[list[str]], accepted: list[str]) -> bool:
    """The order claim (docs/architecture.md, "The order of a thread's messages"): a thread's
    answers follow the order the broker accepted its messages. Messages answered by one turn
    (queued together, or one given as the thread history of a later one) form one step with no
    order inside it; every message of a later answer was accepted after every message of an
    earlier one. A token's first answer counts (a second one is a duplicate, reported apart)."""
    rank = {token: i for i, token in enumerate(accepted)}
    seen: set[str] = set()
    steps: list[list[int]] = []
    for group in groups:
        fresh = [rank[t] for t in dict.fromkeys(group) if t not in seen and t in rank]
        seen.update(group)
        if fresh:
            steps.append(fresh)
    return all(max(earlier) < min(later) for earlier, later in itertools.pairwise(steps))


def _is_failure_notice(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in ("failed", "error", "could not", "refused", "no codex runner"))


def _dead_letters(world: SlackWorld) -> int:
    with contextlib.suppress(Exception):
        return int(world.redis().xlen(world.broker.keys.dead_letter_stream))
    return -1

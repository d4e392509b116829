"""Usage counters in Redis: what budgets are checked against and what the admin page draws.

One hash per subject and UTC period (`keys.budget_counter`), written only with HINCRBY — atomic
on the server, so any number of orchestrator replicas count exactly — and kept well beyond its
period (a day's hash 62 days, for the charts; a month's 400). The writes join the caller's
pipeline (the run's end), the reads join the inbound event's first round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.budgets import (
    ALL_LIMITS,
    ANY_SUBJECT,
    DEPLOYMENT_SUBJECT,
    SCOPES,
    CountedScope,
    LimitName,
    Period,
    Scope,
    exempt_member,
    override_field,
)
from codex_broker.libs.keys import Keys

DAY_TTL_S = 62 * 24 * 3600
MONTH_TTL_S = 400 * 24 * 3600
FIELDS = ("tokens", "micro_usd", "input", "cached", "output", "turns")
COUNTED: tuple[CountedScope, ...] = ("user", "channel", "deployment", "profile")
SLOT_S = 300  # turn latency and run queue samples: one hash per 5 minutes (keys.metrics_bucket)
SLOT_TTL_S = 8 * 24 * 3600


def period_id(period: Period, now: datetime) -> str:
    return now.strftime("d%Y-%m-%d") if period == "day" else now.strftime("m%Y-%m")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    return int(_text(value)) if value is not None else 0


@dataclass(frozen=True)
class Subjects:
    """Who a turn is counted for: `platform:user`, `platform:conversation`, the auth profile."""

    user: str
    channel: str
    profile: str = ""

    def of(self, scope: CountedScope) -> str:
        return {
            "user": self.user,
            "channel": self.channel,
            "deployment": DEPLOYMENT_SUBJECT,
            "profile": self.profile,
        }[scope]


@dataclass(frozen=True)
class TurnUsage:
    input: int
    cached: int
    output: int
    tokens: int
    micro_usd: int


def add_turn(pipe: Any, keys: Keys, subjects: Subjects, usage: TurnUsage, now: datetime) -> None:
    """Count one finished turn for every scope and period (in the caller's round trip)."""
    values = {
        "tokens": usage.tokens,
        "micro_usd": usage.micro_usd,
        "input": usage.input,
        "cached": usage.cached,
        "output": usage.output,
        "turns": 1,
    }
    for scope in COUNTED:
        subject = subjects.of(scope)
        if not subject:
            continue
        for period, ttl in (("day", DAY_TTL_S), ("month", MONTH_TTL_S)):
            pid = period_id(period, now)  # type: ignore[arg-type]
            key = keys.budget_counter(scope, subject, pid)
            for name, value in values.items():
                if value:
                    pipe.hincrby(key, name, value)
            pipe.expire(key, ttl)
            pipe.zincrby(keys.budget_top(scope, pid), usage.tokens, subject)
            pipe.expire(keys.budget_top(scope, pid), ttl)


@dataclass
class OverrideSwitch:
    """Whether admins set any budget override, as one process last saw it (refreshed at most
    every `refresh_s`, off the request path). With no limit in the environment and no override
    there is nothing to check, and the check's reads are left out. Until the first look: yes."""

    refresh_s: float = 1.0
    present: bool = True
    checked_at: float = float("-inf")

    def stale(self, now_s: float) -> bool:
        return now_s - self.checked_at >= self.refresh_s

    async def refresh(self, redis: Redis, keys: Keys, now_s: float) -> None:
        self.checked_at = now_s
        self.present = bool(await redis.exists(keys.budget_overrides))


@dataclass
class BudgetFacts:
    """What a budget decision needs: use per limit, the admins' overrides, the exemptions."""

    used: dict[LimitName, int] = field(default_factory=dict)
    overrides: dict[str, int] = field(default_factory=dict)
    exempt: frozenset[Scope] = frozenset()


def _override_fields(subjects: Subjects) -> list[str]:
    return [
        override_field(name, subject)
        for name in ALL_LIMITS
        for subject in (subjects.of(name.scope), ANY_SUBJECT)
    ]


def queue_reads(pipe: Any, keys: Keys, subjects: Subjects, now: datetime) -> int:
    """Add the reads of `BudgetFacts` to `pipe`; returns how many results they take."""
    for scope in SCOPES:
        for period in ("day", "month"):
            key = keys.budget_counter(scope, subjects.of(scope), period_id(period, now))  # type: ignore[arg-type]
            pipe.hmget(key, "tokens", "micro_usd")
    pipe.hmget(keys.budget_overrides, _override_fields(subjects))
    pipe.smismember(keys.budget_exempt, [exempt_member(s, subjects.of(s)) for s in SCOPES])
    return len(SCOPES) * 2 + 2


def parse_reads(results: list[Any], subjects: Subjects) -> BudgetFacts:
    facts = BudgetFacts()
    index = 0
    for scope in SCOPES:
        for period in ("day", "month"):
            tokens, micro = results[index]
            index += 1
            facts.used[LimitName(scope, period, "tokens")] = _int(tokens)  # type: ignore[arg-type]
            facts.used[LimitName(scope, period, "usd")] = _int(micro)  # type: ignore[arg-type]
    names = _override_fields(subjects)
    facts.overrides = {n: _int(v) for n, v in zip(names, results[index], strict=True) if v is not None}
    flags = results[index + 1]
    facts.exempt = frozenset(s for s, flag in zip(SCOPES, flags, strict=True) if flag)
    return facts


async def read_facts(redis: Redis, keys: Keys, subjects: Subjects, now: datetime) -> BudgetFacts:
    pipe = redis.pipeline(transaction=False)
    queue_reads(pipe, keys, subjects, now)
    return parse_reads(await pipe.execute(), subjects)


# ---- admin writes -----------------------------------------------------------------------------
async def set_override(redis: Redis, keys: Keys, name: LimitName, subject: str, value: int) -> None:
    await redis.hset(keys.budget_overrides, override_field(name, subject), str(value))  # type: ignore[misc]


async def clear_override(redis: Redis, keys: Keys, name: LimitName, subject: str) -> bool:
    return bool(await redis.hdel(keys.budget_overrides, override_field(name, subject)))  # type: ignore[misc]


async def set_exempt(redis: Redis, keys: Keys, scope: Scope, subject: str, *, exempt: bool) -> None:
    member = exempt_member(scope, subject)
    if exempt:
        await redis.sadd(keys.budget_exempt, member)  # type: ignore[misc]
    else:
        await redis.srem(keys.budget_exempt, member)  # type: ignore[misc]


async def all_overrides(redis: Redis, keys: Keys) -> dict[str, int]:
    raw: dict[Any, Any] = await redis.hgetall(keys.budget_overrides)  # type: ignore[misc]
    return {_text(k): _int(v) for k, v in raw.items()}


async def all_exempt(redis: Redis, keys: Keys) -> list[str]:
    raw: set[Any] = await redis.smembers(keys.budget_exempt)  # type: ignore[misc]
    return sorted(_text(m) for m in raw)


# ---- usage over time (admin page) -------------------------------------------------------------
def last_days(now: datetime, days: int) -> list[datetime]:
    return [now - timedelta(days=back) for back in range(days - 1, -1, -1)]


async def top_subjects(
    redis: Redis, keys: Keys, scope: CountedScope, period: Period, now: datetime, limit: int
) -> list[tuple[str, int]]:
    key = keys.budget_top(scope, period_id(period, now))
    raw: list[Any] = await redis.zrevrange(key, 0, limit - 1, withscores=True)
    return [(_text(pair[0]), int(pair[1])) for pair in raw]


async def daily_series(
    redis: Redis, keys: Keys, scope: CountedScope, subjects: list[str], now: datetime, days: int
) -> dict[str, list[dict[str, Any]]]:
    """Per subject, one point per UTC day (oldest first): tokens, micro_usd, turns."""
    dates = last_days(now, days)
    pipe = redis.pipeline(transaction=False)
    for subject in subjects:
        for date in dates:
            pipe.hmget(
                keys.budget_counter(scope, subject, period_id("day", date)), "tokens", "micro_usd", "turns"
            )
    results = iter(await pipe.execute())
    series: dict[str, list[dict[str, Any]]] = {}
    for subject in subjects:
        points = []
        for date in dates:
            tokens, micro, turns = next(results)
            points.append(
                {
                    "day": date.strftime("%Y-%m-%d"),
                    "tokens": _int(tokens),
                    "usd": _int(micro) / 1e6,
                    "turns": _int(turns),
                }
            )
        series[subject] = points
    return series


async def metric_slots(redis: Redis, keys: Keys, now_s: float, slots: int) -> list[dict[str, Any]]:
    """The last `slots` time slots, oldest first: mean/max turn latency, mean/max runs waiting."""
    first = int(now_s) // SLOT_S - slots + 1
    pipe = redis.pipeline(transaction=False)
    for slot in range(first, first + slots):
        pipe.hgetall(keys.metrics_bucket(slot))
    points = []
    for offset, raw in enumerate(await pipe.execute()):
        values = {_text(k): _int(v) for k, v in raw.items()}
        samples, turns = values.get("samples", 0), values.get("turns", 0)
        points.append(
            {
                "at_s": (first + offset) * SLOT_S,
                "turns": turns,
                "latency_ms_mean": round(values.get("latency_ms_sum", 0) / turns) if turns else None,
                "latency_ms_max": values.get("latency_ms_max") if turns else None,
                "waiting_mean": round(values.get("waiting_sum", 0) / samples, 2) if samples else None,
                "waiting_max": values.get("waiting_max") if samples else None,
                "active_mean": round(values.get("active_sum", 0) / samples, 2) if samples else None,
            }
        )
    return points


def utc_now() -> datetime:
    return datetime.now(UTC)

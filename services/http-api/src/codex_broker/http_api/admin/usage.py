"""Usage and budgets as the admin page shows and edits them, over libs.usage_counters.

Reads only what the orchestrator writes: daily counters per user / channel / profile (and the
deployment), the budget overrides and exemptions, and the 5-minute slots of turn latency and
run queue the orchestrator samples as each run ends.
"""

from __future__ import annotations

import re
import time
from typing import Any

from redis.asyncio import Redis

from codex_broker.http_api.errors import ApiError
from codex_broker.libs import usage_counters as counters
from codex_broker.libs.budgets import (
    ANY_SUBJECT,
    DEPLOYMENT_SUBJECT,
    BudgetSettings,
    CountedScope,
    LimitName,
    from_stored,
    to_stored,
)
from codex_broker.libs.keys import Keys

MAX_DAYS = 90
DEFAULT_DAYS = 30
TOP_SUBJECTS = 8
METRIC_SLOTS = 288  # 24 hours of 5-minute slots
MAX_LIMIT_VALUE = 10**15
_SUBJECT = re.compile(r"^[a-z]{2,16}:[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


# ---- validation (pure) ------------------------------------------------------------------------
def days(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if not raw.isdigit() or len(raw) > 3 or not 1 <= int(raw) <= MAX_DAYS:
        raise ApiError(400, "invalid_days", field="days")
    return int(raw)


def limit_name(raw: Any) -> LimitName:
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_budget_limit", field="limit")
    try:
        return LimitName.parse(raw)
    except ValueError:
        raise ApiError(400, "invalid_budget_limit", field="limit") from None


def subject(name_scope: str, raw: Any) -> str:
    """`platform:id`, or `*` (the whole scope); the deployment has the one subject `all`."""
    if name_scope == "deployment":
        if raw in (None, DEPLOYMENT_SUBJECT, ANY_SUBJECT):
            return DEPLOYMENT_SUBJECT
        raise ApiError(400, "invalid_budget_subject", field="subject")
    if raw == ANY_SUBJECT or (isinstance(raw, str) and _SUBJECT.match(raw)):
        return str(raw)
    raise ApiError(400, "invalid_budget_subject", field="subject")


def limit_value(name: LimitName, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= MAX_LIMIT_VALUE:
        raise ApiError(400, "invalid_budget_value", field="value")
    return to_stored(name, raw)


def exempt_scope(raw: Any) -> str:
    if raw not in ("user", "channel"):
        raise ApiError(400, "invalid_budget_scope", field="scope", allowed=["user", "channel"])
    return str(raw)


# ---- reads ------------------------------------------------------------------------------------
def _limits(settings: BudgetSettings, overrides: dict[str, int], exempt: list[str]) -> dict[str, Any]:
    configured = [
        {"limit": name.key, "value": from_stored(name, value)}
        for name, value in sorted(settings.configured_limits().items(), key=lambda item: item[0].key)
    ]
    rows = []
    for field, value in sorted(overrides.items()):
        key, _, who = field.partition("|")
        try:
            name = LimitName.parse(key)
        except ValueError:
            continue  # not ours to show
        rows.append({"limit": key, "subject": who, "value": from_stored(name, value)})
    exempt_rows = [dict(zip(("scope", "subject"), member.split("|", 1), strict=True)) for member in exempt]
    return {
        "configured": configured,
        "overrides": rows,
        "exempt": exempt_rows,
        "notice_percent": settings.budget_notice_percent,
    }


async def _scope_usage(redis: Redis, keys: Keys, scope: CountedScope, n_days: int) -> dict[str, Any]:
    now = counters.utc_now()
    top = await counters.top_subjects(redis, keys, scope, "month", now, TOP_SUBJECTS)
    series = await counters.daily_series(redis, keys, scope, [s for s, _ in top], now, n_days)
    return {
        "top": [{"subject": s, "tokens": tokens} for s, tokens in top],
        "series": [{"subject": s, "points": series[s]} for s, _ in top],
    }


async def overview(redis: Redis, keys: Keys, settings: BudgetSettings, n_days: int) -> dict[str, Any]:
    now = counters.utc_now()
    overrides = await counters.all_overrides(redis, keys)
    exempt = await counters.all_exempt(redis, keys)
    deployment = await counters.daily_series(redis, keys, "deployment", [DEPLOYMENT_SUBJECT], now, n_days)
    return {
        "days": n_days,
        "budgets": _limits(settings, overrides, exempt),
        "deployment": deployment[DEPLOYMENT_SUBJECT],
        "users": await _scope_usage(redis, keys, "user", n_days),
        "channels": await _scope_usage(redis, keys, "channel", n_days),
        "profiles": await _scope_usage(redis, keys, "profile", n_days),
        "metrics": {
            "slot_s": counters.SLOT_S,
            "points": await counters.metric_slots(redis, keys, time.time(), METRIC_SLOTS),
        },
    }

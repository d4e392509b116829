"""Budget policy (pure): which limits apply, whether a new turn may start, when a limit resets,
and what the thread is told.

Only new turns are decided here: a running turn is never cut (Codex 0.169's app-server protocol
has no per-thread token budget to hand it — `thread/start` takes none; only the error code
`sessionBudgetExceeded` exists — so a turn that crosses a limit finishes and the next is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from codex_broker.libs.budgets import (
    ALL_LIMITS,
    LimitName,
    Period,
    Scope,
    effective_limit,
    from_stored,
)
from codex_broker.libs.usage_counters import BudgetFacts, Subjects

Verdict = Literal["allow", "notice", "refuse"]
SCOPE_WORDS: dict[Scope, str] = {"user": "your", "channel": "this channel's", "deployment": "the team's"}
PERIOD_WORDS: dict[Period, str] = {"day": "daily", "month": "monthly"}


@dataclass(frozen=True)
class LimitUse:
    name: LimitName
    used: int  # counter units: tokens or micro-USD
    limit: int

    @property
    def ratio(self) -> float:
        return self.used / self.limit


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    use: LimitUse | None = None  # the limit that decided (the fullest one)
    resets_at: datetime | None = None


def reset_at(period: Period, now: datetime) -> datetime:
    """The start of the next UTC day or month."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day + timedelta(days=1)
    first = day.replace(day=1)
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1)
    return first.replace(month=first.month + 1)


def uses(facts: BudgetFacts, subjects: Subjects, configured: dict[LimitName, int]) -> list[LimitUse]:
    """Every limit that applies to these subjects (not exempt, not unlimited), with its use."""
    found = []
    for name in ALL_LIMITS:
        if name.scope in facts.exempt:
            continue
        limit = effective_limit(name, subjects.of(name.scope), configured, facts.overrides)
        if limit > 0:
            found.append(LimitUse(name, facts.used.get(name, 0), limit))
    return found


def decide(applying: list[LimitUse], *, notice_percent: int, now: datetime) -> Decision:
    """Refuse when any limit is used up, give notice when any is `notice_percent` full."""
    if not applying:
        return Decision("allow")
    fullest = max(applying, key=lambda u: u.ratio)
    if fullest.ratio >= 1:
        over = [u for u in applying if u.ratio >= 1]
        # of the exhausted ones, name the one that resets last: that is when turns start again
        last = max(over, key=lambda u: reset_at(u.name.period, now))
        return Decision("refuse", last, reset_at(last.name.period, now))
    if fullest.ratio * 100 >= notice_percent:
        return Decision("notice", fullest, reset_at(fullest.name.period, now))
    return Decision("allow")


def noticed(applying: list[LimitUse], *, notice_percent: int) -> list[LimitUse]:
    """Each limit at or past the notice mark (each gets its own once-per-period notice)."""
    return [u for u in applying if u.ratio * 100 >= notice_percent]


# ---- texts ------------------------------------------------------------------------------------
def amount(name: LimitName, value: int) -> str:
    if name.unit == "tokens":
        return f"{value:,} tokens"
    return f"${from_stored(name, value):,.2f}"


def limit_label(name: LimitName) -> str:
    unit = "token" if name.unit == "tokens" else "cost"
    return f"{SCOPE_WORDS[name.scope]} {PERIOD_WORDS[name.period]} {unit} budget (`{name.key}`)"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def refusal_text(decision: Decision) -> str:
    assert decision.use is not None and decision.resets_at is not None
    use = decision.use
    return (
        f"⛔ Budget reached: {limit_label(use.name)} is used up "
        f"({amount(use.name, use.used)} of {amount(use.name, use.limit)}). "
        f"I can't start a new turn until it resets at {when(decision.resets_at)}. "
        "An admin can raise it or exempt you with `-budget`."
    )


def notice_text(use: LimitUse, now: datetime) -> str:
    return (
        f"⚠️ {limit_label(use.name)[0].upper()}{limit_label(use.name)[1:]} is {min(use.ratio, 9.99):.0%} used "
        f"({amount(use.name, use.used)} of {amount(use.name, use.limit)}); "
        f"it resets at {when(reset_at(use.name.period, now))}."
    )


def usage_lines(applying: list[LimitUse], facts: BudgetFacts, scope: Scope) -> list[str]:
    """`-usage`: the scope's use this day and month, against its limits where it has any."""
    lines = []
    for period in ("day", "month"):
        tokens = LimitName(scope, period, "tokens")  # type: ignore[arg-type]
        cost = LimitName(scope, period, "usd")  # type: ignore[arg-type]
        parts = []
        for name in (tokens, cost):
            limit = next((u.limit for u in applying if u.name == name), 0)
            used = amount(name, facts.used.get(name, 0))
            parts.append(f"{used} of {amount(name, limit)}" if limit else used)
        lines.append(f"{'today' if period == 'day' else 'this month'}: {' · '.join(parts)}")
    if scope in facts.exempt:
        lines.append("exempt from budgets")
    return lines

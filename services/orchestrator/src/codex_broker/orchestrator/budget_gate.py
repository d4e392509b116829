"""Budgets at the orchestrator's edges: the check before a new turn, the count at a run's end,
the 80 % notice, `-budget` and `-usage`. The rules are in budget.py; the counters in
libs.usage_counters.

The check's reads ride the inbound event's first round trip (no extra one on the path to
`turn/start`); a refusal or notice is logged as the structured event `budget_decision`, which
`record_decision` also puts it on the audit trail (kind `budget`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from codex_broker.libs import audit
from codex_broker.libs.budgets import (
    ANY_SUBJECT,
    DEPLOYMENT_SUBJECT,
    SCOPES,
    LimitName,
    cost_micro_usd,
    to_stored,
)
from codex_broker.libs.contracts import Coordinates, InboundEvent, TokenUsage
from codex_broker.libs.records import RunRecord
from codex_broker.libs.usage_counters import (
    Subjects,
    TurnUsage,
    add_turn,
    parse_reads,
    period_id,
    queue_reads,
    read_facts,
    set_exempt,
    set_override,
    utc_now,
)
from codex_broker.orchestrator import budget, metrics
from codex_broker.orchestrator.core import Core

log = logging.getLogger(__name__)

NOTICE_TTL_S = {"day": 2 * 24 * 3600, "month": 32 * 24 * 3600}
BUDGET_USAGE = (
    "Usage: `-budget` (show), `-budget show user <id>|channel <id>`, "
    "`-budget set <user|channel|deployment> <id|*|here|me> <day|month> <tokens|usd> <limit|off>`, "
    "`-budget exempt|unexempt <user|channel> <id|here|me>`"
)


def event_subjects(event: InboundEvent, profile: str = "") -> Subjects:
    return Subjects(
        user=f"{event.platform}:{event.actor.id}",
        channel=f"{event.platform}:{event.conversation_id}",
        profile=profile,
    )


def run_subjects(run: RunRecord) -> Subjects:
    return Subjects(
        user=f"{run.platform}:{run.requester}" if run.requester else "",
        channel=f"{run.platform}:{run.conversation_id}",
        profile=run.auth_profile,
    )


def record_decision(
    core: Core,
    verdict: str,
    subjects: Subjects,
    session_key: str,
    use: budget.LimitUse | None,
    *,
    actor: str,
) -> None:
    """The budget decisions worth keeping (notice, refusal, exemption): a structured log line and
    an audit record, written beside the reply (never on the path of a turn). `actor`: whose turn
    was refused or noticed, or the admin who exempted."""
    facts: dict[str, str | int | bool] = {"user": subjects.user, "channel": subjects.channel}
    if use is not None:
        facts.update({"limit": use.name.key, "used": use.used, "limit_value": use.limit})
    log.info("budget_decision", extra={"verdict": verdict, "session_key": session_key, **facts})
    platform, _, actor_id = actor.partition(":") if ":" in actor else ("", "", actor)
    record = audit.make(
        "budget",
        actor_id,
        platform=platform,
        session_key=session_key,
        action=verdict,
        summary=use.name.key if use else "",
        details=facts,
    )
    core.in_background(core.audit.write(core.redis, record), "audit budget decision")


# ---- before a new turn --------------------------------------------------------------------------
def add_reads(pipe: Any, core: Core, event: InboundEvent) -> None:
    """What `refused` decides on, in the caller's round trip — only for messages (nothing else
    starts a turn) and only while any budget exists (none: the shipped default)."""
    if event.kind != "message":
        return
    switch, now_s = core.budget_overrides, time.monotonic()
    if switch.stale(now_s):
        switch.checked_at = now_s  # one refresh in flight at a time
        core.in_background(switch.refresh(core.redis, core.keys, now_s), "budget overrides")
    if core.settings.limits or switch.present:
        queue_reads(pipe, core.keys, event_subjects(event), utc_now())


def starts_new_turn(core: Core, event: InboundEvent, state: dict[str, str]) -> bool:
    """A message that steers the running turn is never refused: a running turn is not cut.
    Job callbacks report on work already paid for, so they are counted but never refused."""
    if event.kind != "message":
        return False
    return not (state.get("state") == "running" and core.settings.message_during_run == "steer")


async def refused(core: Core, event: InboundEvent, state: dict[str, str], reads: list[Any]) -> bool:
    """True when the message was refused for a budget (and told so); it may give notice."""
    if not reads or not starts_new_turn(core, event, state):
        return False
    now = utc_now()
    subjects = event_subjects(event)
    applying = budget.uses(parse_reads(reads, subjects), subjects, core.settings.limits)
    decision = budget.decide(applying, notice_percent=core.settings.budget_notice_percent, now=now)
    if decision.verdict == "refuse":
        metrics.INBOUND.labels(outcome="budget_refused").inc()
        record_decision(core, "refuse", subjects, event.session_key, decision.use, actor=subjects.user)
        body = budget.refusal_text(decision)
        await core.reply(event.coords, event.session_key, f"reply:{event.event_id}", body)
        return True
    if decision.verdict == "notice":
        core.in_background(
            give_notices(core, event.coords, event.session_key, subjects, applying, now), "budget notice"
        )
    return False


async def give_notices(
    core: Core,
    coords: Coordinates,
    session_key: str,
    subjects: Subjects,
    applying: list[budget.LimitUse],
    now: datetime,
) -> None:
    """One notice per limit, subject and period — whichever thread crosses the mark first."""
    for use in budget.noticed(applying, notice_percent=core.settings.budget_notice_percent):
        if use.ratio >= 1:
            continue  # used up: the next new turn is refused with its own message
        subject = subjects.of(use.name.scope)
        once = f"budget-notice:{use.name.key}:{subject}:{period_id(use.name.period, now)}"
        if not await core.first_time(once, ttl_s=NOTICE_TTL_S[use.name.period]):
            continue
        record_decision(core, "notice", subjects, session_key, use, actor=subjects.user)
        await core.reply(coords, session_key, once, budget.notice_text(use, now))


# ---- at a run's end -----------------------------------------------------------------------------
def count(core: Core, pipe: Any, run: RunRecord, usage: TokenUsage) -> None:
    """The run's tokens and estimated cost, in the round trip that ends the run (so exactly once)."""
    micro = cost_micro_usd(
        core.settings.price_of(run.model or core.settings.codex_model),
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
    )
    turn = TurnUsage(
        input=usage.input_tokens,
        cached=usage.cached_input_tokens,
        output=usage.output_tokens,
        tokens=usage.total_tokens,
        micro_usd=micro,
    )
    add_turn(pipe, core.keys, run_subjects(run), turn, utc_now())


async def after_run(core: Core, run: RunRecord) -> None:
    """The turn that just ended may have crossed the notice mark: tell its thread."""
    subjects = run_subjects(run)
    if not subjects.user or not (core.settings.limits or core.budget_overrides.present):
        return
    now = utc_now()
    facts = await read_facts(core.redis, core.keys, subjects, now)
    applying = budget.uses(facts, subjects, core.settings.limits)
    coords = Coordinates(
        platform=run.platform,  # type: ignore[arg-type]
        conversation_id=run.conversation_id,
        root_message_id=run.root_message_id,
    )
    await give_notices(core, coords, run.session_key, subjects, applying, now)


# ---- -usage, -budget ----------------------------------------------------------------------------
async def usage_lines(core: Core, event: InboundEvent) -> list[str]:
    subjects = event_subjects(event)
    facts = await read_facts(core.redis, core.keys, subjects, utc_now())
    applying = budget.uses(facts, subjects, core.settings.limits)
    lines = ["*You:* " + "; ".join(budget.usage_lines(applying, facts, "user"))]
    lines.append("*This channel:* " + "; ".join(budget.usage_lines(applying, facts, "channel")))
    if any(u.name.scope == "deployment" for u in applying):
        lines.append("*Everyone:* " + "; ".join(budget.usage_lines(applying, facts, "deployment")))
    return lines


def _subject(event: InboundEvent, scope: str, raw: str) -> str | None:
    """`me` / `here` / `*` / a platform id (Slack's `<@U123>` form too) → the counter subject."""
    if scope == "deployment":
        return DEPLOYMENT_SUBJECT
    value = raw.strip().strip("<>").lstrip("@#")
    if value == ANY_SUBJECT:
        return ANY_SUBJECT
    if value == "me" and scope == "user":
        value = event.actor.id
    elif value == "here" and scope == "channel":
        value = event.conversation_id
    value = value.split("|", 1)[0]
    return f"{event.platform}:{value}" if value and ":" not in value else (value or None)


def _limit_value(name: LimitName, raw: str) -> int | None:
    if raw.lower() in ("off", "none", "0"):
        return 0
    try:
        value = float(raw.replace(",", "").replace("_", "").lstrip("$"))
    except ValueError:
        return None
    return to_stored(name, value) if value >= 0 else None


async def budget_command(core: Core, event: InboundEvent, args: str) -> str:
    """Admins only (commands.ADMIN_COMMANDS): show, set or clear a limit, exempt or unexempt."""
    parts = args.split()
    verb = parts[0].lower() if parts else "show"
    if verb == "show":
        return await _show(core, event, parts[1:])
    if verb == "set" and len(parts) == 6 and parts[1] in SCOPES:
        return await _set(core, event, parts[1:])
    if verb in ("exempt", "unexempt") and len(parts) == 3 and parts[1] in ("user", "channel"):
        subject = _subject(event, parts[1], parts[2])
        if subject is None or subject == ANY_SUBJECT:
            return BUDGET_USAGE
        await set_exempt(core.redis, core.keys, parts[1], subject, exempt=verb == "exempt")  # type: ignore[arg-type]
        who = Subjects(user=subject, channel="") if parts[1] == "user" else Subjects(user="", channel=subject)
        record_decision(core, verb, who, event.session_key, None, actor=f"{event.platform}:{event.actor.id}")
        state = "now exempt from" if verb == "exempt" else "no longer exempt from"
        return f"`{subject}` is {state} {parts[1]} budgets."
    return BUDGET_USAGE


async def _set(core: Core, event: InboundEvent, parts: list[str]) -> str:
    scope, raw_subject, period, unit, raw_value = parts
    try:
        name = LimitName.parse(f"{scope}.{period}.{unit}")
    except ValueError:
        return BUDGET_USAGE
    subject = _subject(event, scope, raw_subject)
    value = _limit_value(name, raw_value)
    if subject is None or value is None:
        return BUDGET_USAGE
    await set_override(core.redis, core.keys, name, subject, value)  # 0: no limit for the subject
    core.budget_overrides.present = True  # this replica checks from the next message on
    log.info("budget override set", extra={"limit": name.key, "subject": subject, "by": event.actor.id})
    shown = budget.amount(name, value) if value else "no limit"
    return f"`{name.key}` for `{subject}` is now {shown}."


async def _show(core: Core, event: InboundEvent, parts: list[str]) -> str:
    subjects = event_subjects(event)
    if len(parts) == 2 and parts[0] in ("user", "channel"):
        subject = _subject(event, parts[0], parts[1])
        if subject is None or subject == ANY_SUBJECT:
            return BUDGET_USAGE
        subjects = (
            Subjects(user=subject, channel=subjects.channel)
            if parts[0] == "user"
            else Subjects(user=subjects.user, channel=subject)
        )
    facts = await read_facts(core.redis, core.keys, subjects, utc_now())
    configured = core.settings.limits
    applying = budget.uses(facts, subjects, configured)
    lines = ["*Budgets*"]
    for scope in SCOPES:
        label = {"user": subjects.user, "channel": subjects.channel, "deployment": "everyone"}[scope]
        lines.append(f"• {scope} `{label}`: " + "; ".join(budget.usage_lines(applying, facts, scope)))
    if not applying:
        lines.append("No limits apply here.")
    lines.append(BUDGET_USAGE)
    return "\n".join(lines)


__all__ = [
    "add_reads",
    "after_run",
    "budget_command",
    "count",
    "event_subjects",
    "record_decision",
    "refused",
    "usage_lines",
]

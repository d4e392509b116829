"""The budget rules (pure): limits that apply, the decision, reset times, cost, settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from codex_broker.libs.budgets import BudgetSettings, LimitName, ModelPrice, cost_micro_usd
from codex_broker.libs.usage_counters import BudgetFacts, Subjects
from codex_broker.orchestrator import budget

NOW = datetime(2026, 12, 31, 22, 15, tzinfo=UTC)
USER_DAY = LimitName("user", "day", "tokens")
CHANNEL_MONTH_USD = LimitName("channel", "month", "usd")
SUBJECTS = Subjects(user="slack:U1", channel="slack:C1")


def test_reset_is_the_next_utc_day_or_month() -> None:
    assert budget.reset_at("day", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budget.reset_at("month", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budget.reset_at("month", datetime(2026, 3, 5, tzinfo=UTC)) == datetime(2026, 4, 1, tzinfo=UTC)


def test_decision_refuses_at_100_gives_notice_at_80_and_names_the_last_reset() -> None:
    configured = {USER_DAY: 1000, CHANNEL_MONTH_USD: 5_000_000}
    facts = BudgetFacts(used={USER_DAY: 799, CHANNEL_MONTH_USD: 1})
    applying = budget.uses(facts, SUBJECTS, configured)
    assert budget.decide(applying, notice_percent=80, now=NOW).verdict == "allow"
    facts.used[USER_DAY] = 800
    assert (
        budget.decide(budget.uses(facts, SUBJECTS, configured), notice_percent=80, now=NOW).verdict
        == "notice"
    )
    facts.used[CHANNEL_MONTH_USD] = 5_000_000
    facts.used[USER_DAY] = 1000
    mid_month = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    decision = budget.decide(budget.uses(facts, SUBJECTS, configured), notice_percent=80, now=mid_month)
    assert decision.verdict == "refuse" and decision.use is not None
    assert decision.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert decision.use.name == CHANNEL_MONTH_USD  # both used up: turns resume when the later resets
    assert "$5.00 of $5.00" in budget.refusal_text(decision)


def test_overrides_and_exemptions() -> None:
    configured = {USER_DAY: 1000}
    facts = BudgetFacts(used={USER_DAY: 1500}, overrides={"user.day.tokens|*": 2000})
    assert (
        budget.decide(budget.uses(facts, SUBJECTS, configured), notice_percent=80, now=NOW).verdict == "allow"
    )
    facts.overrides["user.day.tokens|slack:U1"] = 1200  # the subject's own beats the scope-wide one
    assert (
        budget.decide(budget.uses(facts, SUBJECTS, configured), notice_percent=80, now=NOW).verdict
        == "refuse"
    )
    facts.overrides["user.day.tokens|slack:U1"] = 0  # 0: no limit for this subject
    assert budget.uses(facts, SUBJECTS, configured) == []
    facts.overrides.clear()
    facts.exempt = frozenset({"user"})
    assert budget.uses(facts, SUBJECTS, configured) == []


def test_cost_is_exact_in_micro_usd() -> None:
    price = ModelPrice(input=1.25, cached_input=0.125, output=10)
    assert cost_micro_usd(price, input_tokens=1000, cached_input_tokens=400, output_tokens=100) == 1800
    assert cost_micro_usd(None, input_tokens=1000, cached_input_tokens=0, output_tokens=1) == 0


def test_settings_parse_and_reject_bad_limit_names() -> None:
    settings = BudgetSettings(
        budget_limits='{"user.day.tokens": 100, "deployment.month.usd": 2.5}',  # type: ignore[arg-type]
        model_prices='{"*": {"input": 1, "output": 2}}',  # type: ignore[arg-type]
    )
    assert settings.configured_limits() == {USER_DAY: 100, LimitName("deployment", "month", "usd"): 2_500_000}
    assert settings.price_of("any-model") == ModelPrice(input=1, output=2)
    with pytest.raises(ValidationError, match="expected"):
        BudgetSettings(budget_limits='{"team.day.tokens": 1}')  # type: ignore[arg-type]

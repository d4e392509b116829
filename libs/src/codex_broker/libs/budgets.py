"""Budget limits and model prices: the settings both the orchestrator (which enforces them) and
the http-api (whose admin page shows them) read, and their pure parsing.

A limit is named `scope.period.unit`: scope `user` | `channel` | `deployment`, period `day` |
`month` (UTC), unit `tokens` | `usd`. The environment gives defaults (`BUDGET_LIMITS`); an admin's
override in Redis (see libs.usage_counters) replaces one for one subject, or for every subject of
the scope (subject `*`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings

Scope = Literal["user", "channel", "deployment"]
CountedScope = Literal["user", "channel", "deployment", "profile"]
Period = Literal["day", "month"]
Unit = Literal["tokens", "usd"]

SCOPES: tuple[Scope, ...] = get_args(Scope)
PERIODS: tuple[Period, ...] = get_args(Period)
UNITS: tuple[Unit, ...] = get_args(Unit)
DEPLOYMENT_SUBJECT = "all"
ANY_SUBJECT = "*"
MICRO = 1_000_000  # costs are counted in micro-USD so that HINCRBY keeps them exact


@dataclass(frozen=True)
class LimitName:
    scope: Scope
    period: Period
    unit: Unit

    @property
    def key(self) -> str:
        return f"{self.scope}.{self.period}.{self.unit}"

    @classmethod
    def parse(cls, text: str) -> LimitName:
        scope, _, rest = text.strip().partition(".")
        period, _, unit = rest.partition(".")
        if scope not in SCOPES or period not in PERIODS or unit not in UNITS:
            expected = "<user|channel|deployment>.<day|month>.<tokens|usd>"
            raise ValueError(f"budget limit {text!r}: expected {expected}")
        return cls(scope, period, unit)  # type: ignore[arg-type]


ALL_LIMITS: tuple[LimitName, ...] = tuple(
    LimitName(scope, period, unit) for scope in SCOPES for period in PERIODS for unit in UNITS
)


def to_stored(name: LimitName, value: float) -> int:
    """What a counter holds for `value` of the limit's unit (tokens, or micro-USD)."""
    return int(value) if name.unit == "tokens" else round(value * MICRO)


def from_stored(name: LimitName, value: int) -> float:
    return float(value) if name.unit == "tokens" else value / MICRO


class ModelPrice(BaseModel):
    """USD per million tokens. `input` is charged for input not served from the cache."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float = Field(ge=0)


def _json_object(value: object, what: str) -> object:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError(f"{what} must be a JSON object")
        return parsed
    return value


class BudgetSettings(BaseSettings):
    budget_limits: dict[str, float] = Field(
        default_factory=dict,
        description='Token and cost budgets, JSON {"<user|channel|deployment>.<day|month>.<tokens|usd>": '
        'limit} (e.g. {"user.day.tokens": 2000000, "deployment.month.usd": 500}); none = unlimited',
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='USD per million tokens for the estimated cost, JSON {"model": {"input": 1.25, '
        '"cached_input": 0.125, "output": 10}}; "*" prices models not listed (unpriced: cost 0)',
    )
    budget_notice_percent: int = Field(
        default=80, ge=1, le=100, description="A thread is told once per period when a budget is this full"
    )

    @field_validator("budget_limits", mode="before")
    @classmethod
    def _limits(cls, value: object) -> object:
        parsed = _json_object(value, "BUDGET_LIMITS")
        if isinstance(parsed, dict):
            for name, limit in parsed.items():
                LimitName.parse(str(name))
                if not isinstance(limit, int | float) or limit < 0:
                    raise ValueError(f"budget limit {name!r} must be a number ≥ 0")
        return parsed

    @field_validator("model_prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        return _json_object(value, "MODEL_PRICES")

    @functools.cached_property
    def limits(self) -> dict[LimitName, int]:
        """`configured_limits()`, worked out once (settings do not change while a process runs)."""
        return self.configured_limits()

    def configured_limits(self) -> dict[LimitName, int]:
        """Every limit the environment sets, in counter units (0 means no limit)."""
        found = {LimitName.parse(k): to_stored(LimitName.parse(k), v) for k, v in self.budget_limits.items()}
        return {name: value for name, value in found.items() if value > 0}

    def price_of(self, model: str | None) -> ModelPrice | None:
        return self.model_prices.get(model or "") or self.model_prices.get(ANY_SUBJECT)


def cost_micro_usd(
    price: ModelPrice | None, *, input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> int:
    """Estimated cost of one turn: tokens x USD per million = micro-USD, exactly."""
    if price is None:
        return 0
    cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
    cached_price = price.input if price.cached_input is None else price.cached_input
    fresh = max(input_tokens, 0) - cached
    return round(fresh * price.input + cached * cached_price + max(output_tokens, 0) * price.output)


def override_field(name: LimitName, subject: str) -> str:
    return f"{name.key}|{subject}"


def exempt_member(scope: Scope, subject: str) -> str:
    return f"{scope}|{subject}"


def effective_limit(
    name: LimitName, subject: str, configured: dict[LimitName, int], overrides: dict[str, int]
) -> int:
    """The subject's own override, else the scope-wide one (`*`), else the environment's; 0: none."""
    for field in (override_field(name, subject), override_field(name, ANY_SUBJECT)):
        if field in overrides:
            return max(overrides[field], 0)
    return configured.get(name, 0)

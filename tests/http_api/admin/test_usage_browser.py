"""The admin page's Usage view in real headless Chromium: the charts draw the seeded usage, turn
latency and run queue as SVG, and a budget set from the page reaches Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.browser import needs_chromium
from tests.helpers import wait_for
from tests.http_api.admin.conftest import ADMIN_TOKEN
from tests.http_api.admin.test_admin_browser import ARTIFACTS, browser, served  # noqa: F401
from tests.http_api.admin.test_admin_usage import seed_usage

pytestmark = needs_chromium


async def test_usage_charts_render_with_data(
    served: str,  # noqa: F811
    browser: Any,  # noqa: F811
    redis: Redis,
    keys: Keys,
    data_root: Path,
) -> None:
    await seed_usage(redis, keys)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browser.new_page(viewport={"width": 1360, "height": 1000})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(f"{served}/admin#usage")
    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Unlock").click()

    await page.locator("#chart-deployment svg.chart-svg").wait_for()
    # every day with use is a bar; both users and the profile are lines of their own
    assert await page.locator("#chart-deployment rect.bar").count() == 3
    assert await page.locator("#chart-cost rect.bar").count() == 3
    users = page.locator("#chart-users path.series")
    assert sorted([await users.nth(i).get_attribute("data-series") for i in range(await users.count())]) == [
        "slack:U1",
        "slack:U2",
    ]
    assert await page.locator("#chart-channels path.series").count() == 1
    await page.locator("#chart-profiles .legend").get_by_text("team").wait_for()
    # one 5-minute slot holds both samples: a point for the mean and for the max latency
    assert await page.locator("#chart-latency circle.dot").count() == 2
    assert await page.locator("#chart-queue circle.dot").count() == 3
    label = await page.locator("#chart-users svg.chart-svg").get_attribute("aria-label")
    assert label is not None and "slack:U1" in label
    await page.screenshot(path=str(ARTIFACTS / "usage.png"), full_page=True)

    # a budget from the page's form
    await page.get_by_label("Limit", exact=True).select_option("user.day.tokens")
    await page.get_by_label("Subject (slack:U0123, slack:C0123; empty = everyone in the scope)").fill(
        "slack:U1"
    )
    await page.get_by_label("Limit (tokens or USD; 0 = no limit)").fill("250000")
    await page.get_by_role("button", name="Set limit").click()
    await page.locator("#usage-budgets").get_by_text("slack:U1").wait_for()

    async def stored() -> bool:
        return await redis.hget(keys.budget_overrides, "user.day.tokens|slack:U1") == b"250000"

    await wait_for(stored, what="the override in Redis")
    assert problems == []

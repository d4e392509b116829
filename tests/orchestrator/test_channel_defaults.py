"""Issue 20 item 4 on real Redis: a channel's defaults shape the run (workspace in the repos
cache + its clone URL, model, sandbox); `-repo` / `-model` pick among the allowed values between
turns; `-status` shows the choice; a value the channel does not allow is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs import channel_defaults, paths
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message

DEFAULTS = channel_defaults.ChannelDefaults(
    repo="acme/api",
    model="gpt-team",
    sandbox="read-only",
    repos={"acme/api": "/srv/git/api.git", "acme/web": ""},
    models=["gpt-big"],
)


async def finish(driver: Driver, runner: FakeRunnerScript) -> None:
    await runner.emit("completed", text="done")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{runner.request.run_id}")
    key = driver.keys.session_state(runner.request.session_key)

    async def idle() -> bool:
        return await driver.redis.hget(key, "state") == b"idle"

    await wait_for(idle, what="idle")


async def test_defaults_picks_and_status(
    driver: Driver, settings_for: Callable[..., Settings], redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    settings = settings_for(codex_model="gpt-base")
    await driver.start(settings)
    await channel_defaults.save(redis, keys, "slack", "C1", DEFAULTS)
    first = message("fix the api", conversation="C1")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    data_root = Path(settings.data_root).resolve()  # noqa: ASYNC240 - a test
    assert request.workspace == str(paths.repos_root(data_root) / "acme/api")
    assert (request.repo_url, request.model, request.sandbox) == ("/srv/git/api.git", "gpt-team", "read-only")
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await finish(driver, runner)

    root = first.root_message_id
    for text in ("-model gpt-nope", "-repo elsewhere", "-model gpt-big", "-repo acme/web", "-status"):
        await driver.inbound(message(text, conversation="C1", root=root, mention=False))
    replies = await wait_for(
        lambda: _replies_with(driver, "*Status:*"), what="the status answer after the picks"
    )
    assert any("`gpt-nope` is not allowed here" in r for r in replies)
    assert any("`elsewhere` is not allowed here" in r for r in replies)
    assert any("Model set to `gpt-big`" in r for r in replies)
    assert any("Repo set to `acme/web`" in r for r in replies)
    status = next(r for r in replies if "*Status:*" in r)
    assert "*Model:* `gpt-big`" in status and "*Repo:* `acme/web`" in status and "`read-only`" in status

    await driver.inbound(message("now the web", conversation="C1", root=root, mention=False))
    _, second = await driver.wait_runs(2)
    assert second.workspace == str(paths.repos_root(data_root) / "acme/web")
    assert second.repo_url is None and second.model == "gpt-big"
    assert second.thread_id is None  # a new working directory: a fresh Codex thread

    # another channel has no defaults: the deployment's own settings
    await driver.inbound(message("elsewhere", conversation="C2"))
    *_, third = await driver.wait_runs(3)
    assert third.workspace == str(paths.session_workspace(data_root, third.session_key))
    assert (third.repo_url, third.model, third.sandbox) == (None, "gpt-base", "workspace-write")
    await driver.inbound(message("-model gpt-big", conversation="C2", root=third.coords.root_message_id))
    await wait_for(lambda: _replies_with(driver, "No models to pick from"), what="no models here")


async def _replies_with(driver: Driver, needle: str) -> list[str] | None:
    replies = await driver.replies()
    return replies if any(needle in r for r in replies) else None

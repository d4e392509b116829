"""Per-channel defaults + a thread's picks + the deployment → run params (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_broker.libs import paths
from codex_broker.libs.channel_defaults import ChannelDefaults
from codex_broker.orchestrator.channel_defaults import Deployment, pick_problem, resolve

ROOT = Path("/data")
SK = "slack:C1:1.0"
OWN = str(paths.session_workspace(ROOT, SK))
DEPLOY = Deployment(data_root=ROOT, model="gpt-base", sandbox="workspace-write")
CHANNEL = ChannelDefaults(
    repo="acme/api",
    model="gpt-team",
    sandbox="read-only",
    repos={"acme/api": "https://git.example/acme/api.git", "acme/web": ""},
    models=["gpt-big"],
)


def test_no_defaults_is_the_deployment() -> None:
    params = resolve(None, {"workspace": OWN}, SK, DEPLOY)
    assert (params.workspace, params.repo, params.repo_url, params.model, params.sandbox) == (
        OWN,
        None,
        None,
        "gpt-base",
        "workspace-write",
    )


def test_channel_defaults_apply() -> None:
    params = resolve(CHANNEL, {"workspace": OWN}, SK, DEPLOY)
    assert params.workspace == "/data/repos/acme/api" and params.repo == "acme/api"
    assert params.repo_url == "https://git.example/acme/api.git"
    assert (params.model, params.sandbox) == ("gpt-team", "read-only")


def test_a_threads_picks_win_when_allowed() -> None:
    session = {"workspace": OWN, "pick_repo": "acme/web", "pick_model": "gpt-big"}
    params = resolve(CHANNEL, session, SK, DEPLOY)
    assert (params.workspace, params.repo_url, params.model) == ("/data/repos/acme/web", None, "gpt-big")


def test_picks_no_longer_allowed_fall_back_to_the_default() -> None:
    session = {"workspace": OWN, "pick_repo": "gone", "pick_model": "gpt-gone"}
    params = resolve(CHANNEL, session, SK, DEPLOY)
    assert (params.repo, params.model) == ("acme/api", "gpt-team")
    # and without channel defaults a pick means nothing
    assert resolve(None, session, SK, DEPLOY).model == "gpt-base"


def test_an_admins_session_config_and_cd_win_over_everything() -> None:
    session = {"workspace": "/srv/project", "cfg_model": "gpt-admin", "cfg_sandbox": "danger-full-access"}
    params = resolve(CHANNEL, {**session, "pick_model": "gpt-big"}, SK, DEPLOY)
    assert (params.workspace, params.repo, params.model, params.sandbox) == (
        "/srv/project",
        None,
        "gpt-admin",
        "danger-full-access",
    )


@pytest.mark.parametrize(
    ("defaults", "what", "value", "problem"),
    [
        (CHANNEL, "repo", "acme/web", None),
        (CHANNEL, "repo", "acme/api", None),
        (CHANNEL, "model", "gpt-team", None),
        (CHANNEL, "model", "gpt-big", None),
        (CHANNEL, "repo", "other", "not allowed"),
        (CHANNEL, "model", "gpt-x", "not allowed"),
        (None, "model", "gpt-big", "No models"),
        (ChannelDefaults(model="m"), "repo", "x", "No repos"),
    ],
)
def test_pick_problem(defaults: ChannelDefaults | None, what: str, value: str, problem: str | None) -> None:
    found = pick_problem(defaults, what, value)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    "bad",
    [
        {"repos": {"../etc": ""}},
        {"repos": {"a/b/c": ""}},
        {"repos": {"a": "--upload-pack=evil"}},
        {"repos": {"a": "relative/path"}},
        {"models": ["has space"]},
        {"model": ""},
        {"sandbox": "full"},
        {"extra": 1},
    ],
)
def test_stored_defaults_reject_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        ChannelDefaults.model_validate(bad)

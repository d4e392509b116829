"""The session permission profile: what each session's commands may read and write."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_broker.libs import codex_sandbox, paths, sealing

SESSION = "slack:C1:1700000000.000100"


def make_root(tmp_path: Path) -> Path:
    root = (tmp_path / "data").resolve()
    home = paths.codex_home(root)
    (home / "git-hooks").mkdir(parents=True)
    (home / "auth.json").write_text("{}")
    (home / "state_5.sqlite").write_text("")
    (paths.codex_home(root, "team-b")).mkdir(parents=True)
    paths.team_home(root).mkdir()
    (paths.team_home(root) / "AGENTS.md").write_text("be nice")
    (home / "AGENTS.md").symlink_to(paths.team_home(root) / "AGENTS.md")
    sealing.prepare_codex_home(home)
    return root


def test_rules_hide_private_trees_and_codex_home_entries_but_keep_the_shared_ones(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    workspace = paths.session_workspace(root, SESSION)
    rules = sealing.filesystem_rules(root, SESSION, workspace, paths.codex_home(root))
    home = paths.codex_home(root)
    for denied in ("sessions", "logs", "redis", "secrets", "outbox", "jobs"):
        assert rules[str(root / denied)] == "none"
    for denied in ("auth.json", "state_5.sqlite", "sessions", "archived_sessions", "log"):
        assert rules[str(home / denied)] == "none"
    assert rules[str(paths.codex_home(root, "team-b"))] == "none"
    for shared in ("git-hooks", "AGENTS.md", "tmp"):
        assert str(home / shared) not in rules
    assert str(home) not in rules  # hiding it whole would hide the git identity
    assert rules[str(workspace)] == "write"
    assert rules[str(paths.session_dir(root, SESSION))] == "write"
    assert rules["/"] == "read"


def test_sealed_config_selects_the_profile_and_its_network_switch(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    workspace = paths.session_workspace(root, SESSION)
    config = sealing.sealed_config(root, SESSION, workspace, paths.codex_home(root), network_access=False)
    assert config["default_permissions"] == sealing.PROFILE_ID
    assert config["permissions"][sealing.PROFILE_ID]["network"] == {"enabled": False}


def test_workspace_check_allows_own_session_repos_and_outside_but_not_another_session(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    own = paths.session_workspace(root, SESSION)
    assert sealing.check_workspace(root, SESSION, str(own)) == own
    repo = paths.repos_root(root) / "acme"
    assert sealing.check_workspace(root, SESSION, str(repo)) == repo
    outside = tmp_path / "elsewhere"
    assert sealing.check_workspace(root, SESSION, str(outside)) == outside
    for foreign in (paths.session_workspace(root, "slack:C1:other"), paths.codex_home(root), root / "logs"):
        with pytest.raises(sealing.WorkspaceRefused):
            sealing.check_workspace(root, SESSION, str(foreign))
    with pytest.raises(sealing.WorkspaceRefused):
        sealing.check_workspace(root, SESSION, f"{own}/../../{paths.safe_name('slack:C1:other')}/workspace")


def test_network_off_closes_every_socket_and_on_names_only_the_allowed_hosts() -> None:
    assert sealing.network_rules(False, ["127.0.0.42"]) == {"enabled": False}
    assert sealing.network_rules(True, ["127.0.0.42", "github.com"]) == {
        "enabled": True,
        "mode": "full",
        "domains": {"127.0.0.42": "allow", "github.com": "allow"},
    }


def test_the_managed_proxy_is_switched_on_only_with_network(tmp_path: Path) -> None:
    workspace = paths.session_workspace(tmp_path, SESSION)
    home = paths.codex_home(tmp_path)
    on = sealing.sealed_config(tmp_path, SESSION, workspace, home, network_access=True, allowed_hosts=["h"])
    off = sealing.sealed_config(tmp_path, SESSION, workspace, home, network_access=False)
    # one dotted key: a `features` table would replace the app-server's (shell_snapshot=false)
    assert on["features.network_proxy"] is True and "features" not in on
    assert on["permissions"][sealing.PROFILE_ID]["network"]["domains"] == {"h": "allow"}
    assert not any(key.startswith("features") for key in off)
    # the `codex sandbox` CLI (red team, probes) gets the same switch from the dotted key
    assert "features.network_proxy=true" in codex_sandbox.config_overrides(on)


def test_the_api_host_comes_from_the_api_base() -> None:
    assert sealing.api_host("http://127.0.0.42:3000") == "127.0.0.42"
    assert sealing.api_host("http://http-api:3000/") == "http-api"
    assert sealing.api_host("http://[::1]:3000") == "::1"


def test_job_rules_hide_every_codex_home_whole_and_grant_the_job_its_own_directory(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    workspace = paths.session_workspace(root, SESSION)
    job = paths.job_dir(root, "j1")
    rules = sealing.job_filesystem_rules(root, SESSION, workspace, job)
    for denied in ("sessions", "logs", "redis", "outbox", "jobs"):
        assert rules[str(root / denied)] == "none"
    assert rules[str(paths.codex_home(root))] == "none"
    assert rules[str(paths.codex_home(root, "team-b"))] == "none"
    assert (rules[str(job)], rules[str(workspace)]) == ("write", "write")
    assert rules[str(paths.session_dir(root, SESSION))] == "write"
    assert str(paths.team_home(root)) not in rules and str(paths.repos_root(root)) not in rules
    assert rules["/"] == "read"
    config = sealing.job_config(root, SESSION, workspace, job, network_access=True, allowed_hosts=["api"])
    assert config["default_permissions"] == sealing.PROFILE_ID
    assert config["permissions"][sealing.PROFILE_ID] == {
        "filesystem": rules,
        "network": sealing.network_rules(True, ["api"]),
    }
    assert config["features"] == {"network_proxy": True}

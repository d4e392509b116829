"""The Codex child's command line, environment and CODEX_HOME preparation."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.environment import (
    app_server_command,
    child_env,
    link_team_entries,
    native_codex_bin,
    prepare_profile,
)
from codex_broker.libs import paths


def _settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "data_root": tmp_path / "data",
        "path": "/usr/bin:/bin",
        "home": tmp_path / "home",
        "openai_api_key": "sk-test-key-000000000000",
        "broker_api_base": "http://127.0.0.1:3000",
        "https_proxy": "http://127.0.0.1:9",
        "no_proxy": "127.0.0.1,localhost",
    }
    base.update(values)
    return Settings(**base)  # type: ignore[arg-type]


def test_child_env_is_built_from_scratch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    settings = _settings(tmp_path)
    env = child_env(settings, prepare_profile(settings, "default"))
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": str((tmp_path / "home").resolve()),
        "CODEX_HOME": str((tmp_path / "data" / "codex-home").resolve()),
        "BROKER_API_BASE": "http://127.0.0.1:3000",
        "OPENAI_API_KEY": "sk-test-key-000000000000",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # Codex's git: our config (credential helper, co-author hook), never the host's; headless
        "GIT_CONFIG_GLOBAL": str((tmp_path / "data" / "codex-home" / "gitconfig").resolve()),
        "GIT_TERMINAL_PROMPT": "0",
        "GH_PROMPT_DISABLED": "1",
    }


def test_command_disables_apps_mcp_and_analytics(tmp_path: Path) -> None:
    settings = _settings(tmp_path, codex_config_overrides=['model="o3"'])
    profile = prepare_profile(settings, "default")
    (profile.codex_home / "config.toml").write_text(
        '[mcp_servers.github]\ncommand = "x"\n[mcp_servers."odd.name"]\ncommand = "y"\n'
    )
    command = app_server_command(settings, "/bin/codex", profile)
    assert command[:2] == ["/bin/codex", "app-server"]
    joined = " ".join(command)
    assert "--disable apps --disable plugins --disable remote_plugin" in joined
    assert "-c analytics.enabled=false" in joined
    assert "-c mcp_servers.github.enabled=false" in joined
    assert "odd.name" not in joined
    assert command[-2:] == ["-c", 'model="o3"']

    allowed = _settings(tmp_path, codex_disable_apps=False, codex_disable_mcp=False)
    joined = " ".join(app_server_command(allowed, "/bin/codex", profile))
    assert "--disable" not in joined and "mcp_servers" not in joined


def test_shell_snapshot_is_off_unless_the_operator_turns_it_back_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path, codex_config_overrides=["features.shell_snapshot=true"])
    command = app_server_command(settings, "/bin/codex", prepare_profile(settings, "default"))
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    # a later -c wins in Codex: the operator's override comes after the default
    assert overrides.index("features.shell_snapshot=false") < overrides.index("features.shell_snapshot=true")


def test_the_workspace_is_the_project_root_unless_the_operator_says_otherwise(tmp_path: Path) -> None:
    settings = _settings(tmp_path, codex_config_overrides=['project_root_markers=[".git"]'])
    command = app_server_command(settings, "/bin/codex", prepare_profile(settings, "default"))
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert overrides.index("project_root_markers=[]") < overrides.index('project_root_markers=[".git"]')


def test_profiles_link_team_entries_and_install_auth(tmp_path: Path) -> None:
    team = paths.team_home(tmp_path / "data")
    (team / "skills").mkdir(parents=True)
    (team / "AGENTS.md").write_text("rules")
    (team / "config.toml").write_text("model = 'x'")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"OPENAI_API_KEY": "sk-from-auth-json-0000"}))

    settings = _settings(tmp_path, openai_api_key=None, codex_auth_json_path=auth)
    default = prepare_profile(settings, "default")
    assert (default.codex_home / "AGENTS.md").is_symlink()
    assert stat.S_IMODE((default.codex_home / "auth.json").stat().st_mode) == 0o600
    assert default.api_key == "sk-from-auth-json-0000"
    assert stat.S_IMODE(default.codex_home.stat().st_mode) == 0o700

    other = prepare_profile(settings, "../evil")
    assert other.codex_home.parent == (tmp_path / "data" / "codex-homes").resolve()
    assert other.api_key is None  # the default profile's key is never lent to another profile
    assert (other.codex_home / "config.toml").is_symlink()


def test_existing_entries_are_kept(tmp_path: Path) -> None:
    team = tmp_path / "team"
    team.mkdir()
    (team / "config.toml").write_text("team")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("operator")
    assert link_team_entries(team, home) == []
    assert (home / "config.toml").read_text() == "operator"


def test_native_binary_passthrough(tmp_path: Path) -> None:
    assert native_codex_bin("/usr/bin/true") == "/usr/bin/true"
    launcher = tmp_path / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/usr/bin/env node\n")
    native = tmp_path / "node_modules" / "@openai" / "codex-linux-x64" / "vendor" / "x86_64" / "bin" / "codex"
    native.parent.mkdir(parents=True)
    native.write_text("#!/bin/sh\n")
    native.chmod(0o755)
    link = tmp_path / "codex"
    link.symlink_to(launcher)
    assert native_codex_bin(str(link)) == str(native)


def test_codex_databases_go_into_one_directory_of_codex_home(tmp_path: Path) -> None:
    """One directory for the seal to hide instead of 18 files (environment.SQLITE_DIR)."""
    settings = _settings(tmp_path, codex_config_overrides=['sqlite_home="/srv/codex-db"'])
    profile = prepare_profile(settings, "default")
    folder = profile.codex_home / "sqlite"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    command = app_server_command(settings, "/bin/codex", profile)
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert f"sqlite_home={json.dumps(str(folder))}" in overrides
    # an operator's own location comes later and wins
    assert overrides[-1] == 'sqlite_home="/srv/codex-db"'

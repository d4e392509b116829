"""A sealed thread's config says when its workspace has no project docs (project_docs.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.events import EventPublisher
from codex_broker.codex_runner.project_docs import NO_PROJECT_DOCS, thread_config
from codex_broker.codex_runner.supervisor import Supervisor
from codex_broker.codex_runner.turn import TurnRun
from codex_broker.libs import paths
from codex_broker.libs.contracts import Coordinates, RunInput, RunRequest
from codex_broker.libs.keys import Keys


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    workspace, home = tmp_path / "workspace", tmp_path / "codex-home"
    workspace.mkdir()
    home.mkdir()
    return workspace, home


def test_a_workspace_without_docs_tells_codex_to_look_for_none(tmp_path: Path) -> None:
    workspace, home = _dirs(tmp_path)
    (workspace / "README.md").write_text("not a project doc\n")
    assert thread_config(workspace, home, []) == NO_PROJECT_DOCS == {"project_doc_max_bytes": 0}


def test_any_entry_by_a_doc_name_is_left_to_codex(tmp_path: Path) -> None:
    workspace, home = _dirs(tmp_path)
    (workspace / "AGENTS.md").write_text("rules\n")
    assert thread_config(workspace, home, []) == {}
    (workspace / "AGENTS.md").unlink()
    # a link the runner cannot follow is still Codex's to judge (inside the sandbox)
    (workspace / "AGENTS.override.md").symlink_to(tmp_path / "elsewhere" / "secret.md")
    assert thread_config(workspace, home, []) == {}


def test_the_profiles_fallback_names_count_as_docs(tmp_path: Path) -> None:
    workspace, home = _dirs(tmp_path)
    (home / "config.toml").write_text('project_doc_fallback_filenames = ["CLAUDE.md"]\n')
    assert thread_config(workspace, home, []) == NO_PROJECT_DOCS
    (workspace / "CLAUDE.md").write_text("rules\n")
    assert thread_config(workspace, home, []) == {}


def test_an_operator_setting_of_the_search_is_left_alone(tmp_path: Path) -> None:
    workspace, home = _dirs(tmp_path)
    for override in (
        'project_root_markers=[".git"]',
        "project_doc_max_bytes = 65536",
        'project_doc_fallback_filenames=["X.md"]',
    ):
        assert thread_config(workspace, home, ['model="o3"', override]) == {}
    assert thread_config(workspace, home, ['model="o3"']) == NO_PROJECT_DOCS


def _sealed_thread_config(tmp_path: Path, workspace_files: tuple[str, ...]) -> dict[str, Any]:
    """The config a sealed thread/start carries, as the runner builds it."""
    data_root = tmp_path / "data"
    settings = Settings(data_root=data_root, openai_api_key="sk-test-key-000000000000")  # type: ignore[call-arg]
    coords = Coordinates(platform="slack", conversation_id="C1", root_message_id="1.0001")
    workspace = paths.session_workspace(data_root, coords.session_key)
    workspace.mkdir(parents=True)
    for name in workspace_files:
        (workspace / name).write_text("rules\n")
    request = RunRequest(
        session_key=coords.session_key,
        coords=coords,
        workspace=str(workspace),
        input=[RunInput(type="text", text="hi")],
    )
    codex_home = paths.codex_home(data_root)
    codex_home.mkdir(parents=True)
    supervisor = cast(Supervisor, SimpleNamespace(profile=SimpleNamespace(codex_home=codex_home)))
    run = TurnRun(
        request,
        runner_id="r1",
        keys=Keys("cbtest"),
        settings=settings,
        supervisor=supervisor,
        publisher=cast(EventPublisher, None),
    )
    sandbox, config = run._thread_sandbox()
    assert sandbox is None and config is not None and config["default_permissions"] == "cb-session"
    return config


def test_a_sealed_thread_config_carries_the_absence_of_docs(tmp_path: Path) -> None:
    assert _sealed_thread_config(tmp_path / "a", ())["project_doc_max_bytes"] == 0
    assert "project_doc_max_bytes" not in _sealed_thread_config(tmp_path / "b", ("AGENTS.md",))

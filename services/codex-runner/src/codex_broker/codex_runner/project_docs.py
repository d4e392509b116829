"""Whether a sealed thread's workspace holds project docs for Codex to look for.

Under a session's permission profile Codex 0.169 makes each of its own file operations through a
sandboxed helper (`codex-linux-sandbox`, a bubblewrap `/proc` preflight, bubblewrap, then `codex
--codex-run-as-fs-helper`), one chain per operation. Looking for project docs when a thread starts
or is resumed costs two of them: `AGENTS.override.md` and `AGENTS.md` in the workspace (the project
root: the runner passes `project_root_markers=[]`). When none of the names Codex would look for is
in the workspace, the thread's config says so with `project_doc_max_bytes = 0`, with which Codex
looks for none (codex-rs/core/src/agents_md.rs, `read_agents_md`). A workspace that has one — a
file, a link, a directory, anything by that name — is left to Codex, which reads it inside the
sandbox as before; the runner only tests names (lstat), it never opens them. Global instructions
(CODEX_HOME's AGENTS.md, the team's) are not project docs and reach the model as before.

A doc created between this check and Codex's own look is picked up when the thread is next
started or resumed, as one created after Codex's look always was.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# What Codex 0.169 looks for in each project directory, before `project_doc_fallback_filenames`.
CODEX_DOC_NAMES = ("AGENTS.override.md", "AGENTS.md")
# Operator settings that change where Codex looks or how much it reads: with any of them among
# CODEX_CONFIG_OVERRIDES the runner leaves the search to Codex.
SEARCH_KEYS = frozenset({"project_root_markers", "project_doc_max_bytes", "project_doc_fallback_filenames"})
NO_PROJECT_DOCS = {"project_doc_max_bytes": 0}


def fallback_filenames(config_toml: Path) -> list[str]:
    """The profile's `project_doc_fallback_filenames` (config.toml), which Codex looks for too."""
    try:
        names = tomllib.loads(config_toml.read_text(encoding="utf-8")).get("project_doc_fallback_filenames")
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return [name for name in names if isinstance(name, str) and name] if isinstance(names, list) else []


def operator_sets_the_search(overrides: Sequence[str]) -> bool:
    return any(override.split("=", 1)[0].strip() in SEARCH_KEYS for override in overrides)


def has_project_docs(workspace: Path, names: Sequence[str]) -> bool:
    # lexists: a dangling link or a directory by that name is Codex's to judge, not ours
    return any(os.path.lexists(Path(workspace) / name) for name in names)


def thread_config(workspace: Path, codex_home: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """What a sealed thread's config adds so that Codex skips looking for absent project docs:
    `project_doc_max_bytes = 0` when the workspace has none, else nothing."""
    if operator_sets_the_search(overrides):
        return {}
    names = [*CODEX_DOC_NAMES, *fallback_filenames(codex_home / "config.toml")]
    return {} if has_project_docs(workspace, names) else dict(NO_PROJECT_DOCS)

"""Where the pinned Codex CLI lives: CODEX_BIN, else the project-local tools folder, else PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CODEX_VERSION = "0.169.0"
CODEX_NPM_PACKAGE = "@openai/codex"


def project_root() -> Path:
    # libs/src/codex_broker/libs/codex_bin.py → repository root
    return Path(__file__).resolve().parents[4]


def tools_codex_bin(root: Path | None = None) -> Path:
    return (root or project_root()) / ".tools" / "codex" / "node_modules" / ".bin" / "codex"


def find_codex_bin(explicit: str | None = None) -> str | None:
    """The Codex executable to run, or None when it is not installed anywhere we look."""
    candidate = explicit or os.environ.get("CODEX_BIN")
    if candidate:
        return candidate if Path(candidate).exists() or shutil.which(candidate) else None
    local = tools_codex_bin()
    if local.exists():
        return str(local)
    return shutil.which("codex")

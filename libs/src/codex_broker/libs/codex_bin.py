"""Where the pinned Codex CLI lives: CODEX_BIN, else the project-local tools folder, else PATH."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CODEX_VERSION = "0.169.0"
CODEX_NPM_PACKAGE = "@openai/codex"
# Codex's SQLite databases (thread state, logs, memories …) go in one directory of CODEX_HOME
# instead of its top level: the seal hides CODEX_HOME entry by entry, one bubblewrap mount per
# entry per sandboxed operation (services/codex-runner environment.py says what it saves). Every
# app-server the broker starts on a CODEX_HOME (the runner's, the account check's) keeps them there.
CODEX_SQLITE_DIR = "sqlite"


def sqlite_home_override(codex_home: Path) -> str:
    """The `-c` override that keeps Codex's databases in CODEX_HOME/CODEX_SQLITE_DIR (which
    the caller creates, 0700, before Codex starts)."""
    return f"sqlite_home={json.dumps(str(codex_home / CODEX_SQLITE_DIR))}"


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


def native_codex_bin(codex_bin: str) -> str:
    """The native Codex executable behind the npm launcher, when `codex_bin` is that launcher.

    The npm `codex` is a Node script that (on Node < 23) spawns the native binary as a child:
    a second process per app-server, and a SIGKILL to the launcher would leave the real server
    running on our pipes. Exec the native binary directly instead.
    """
    launcher = Path(shutil.which(codex_bin) or codex_bin).resolve()
    if launcher.suffix != ".js":
        return codex_bin
    scope = launcher.parent.parent.parent  # node_modules/@openai
    for pattern in ("codex-*/vendor/*/bin/codex", "codex/vendor/*/bin/codex"):
        for candidate in sorted(scope.glob(pattern)):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return codex_bin

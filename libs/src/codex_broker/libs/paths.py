"""Path-safe names and containment checks for anything derived from platform input."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 120


def safe_name(raw: str) -> str:
    """A single path component: no separators, no traversal, bounded length, collision-free.

    The readable part is sanitized; a short hash of the raw value keeps distinct keys distinct.
    """
    readable = _UNSAFE.sub("_", raw).strip("._-")[:80] or "x"
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    return f"{readable}-{digest}"[:MAX_NAME]


def is_within(path: Path, root: Path) -> bool:
    """True when `path` resolves (symlinks followed) inside `root`."""
    try:
        path.resolve(strict=False).relative_to(root.resolve(strict=False))
    except ValueError:
        return False
    return True


def session_dir(data_root: Path, session_key: str) -> Path:
    return Path(data_root) / "sessions" / safe_name(session_key)


def session_workspace(data_root: Path, session_key: str) -> Path:
    return session_dir(data_root, session_key) / "workspace"


def repos_root(data_root: Path) -> Path:
    return Path(data_root) / "repos"


def codex_home(data_root: Path, profile: str = "default") -> Path:
    base = Path(data_root) / "codex-home"
    return base if profile == "default" else Path(data_root) / "codex-homes" / safe_name(profile)


def team_home(data_root: Path) -> Path:
    return Path(data_root) / "team-home"


def secrets_root(data_root: Path) -> Path:
    """Secrets `codex-broker up` generates (the embedded Redis's password, the admin token)."""
    return Path(data_root) / "secrets"


def job_dir(data_root: Path, job_id: str) -> Path:
    return Path(data_root) / "jobs" / safe_name(job_id)

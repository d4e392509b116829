"""A run's working directory before thread/start: a repo of the shared repos cache that is not
there yet is cloned first (per-channel defaults, `-repo`); any other workspace is only created.

The clone goes to a temporary sibling and is renamed into place, so a run that finds the
directory finds a whole clone, and two runs cloning the same repo at once leave one of them.
It runs with the runner's own environment (its git credentials), never inside a session's
sandbox; the URL comes from an admin's channel defaults (checked by the admin API and again by
shape here: it can never be read as an option).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from pathlib import Path

from codex_broker.libs import paths
from codex_broker.libs.channel_defaults import CLONE_URL
from codex_broker.libs.contracts import RunRequest

CLONE_TIMEOUT_S = 600.0
ERROR_TAIL = 500


class CloneFailed(Exception):
    """The repo could not be cloned: the run fails with this text."""


def needs_clone(request: RunRequest, data_root: Path) -> bool:
    workspace = Path(request.workspace)
    return (
        bool(request.repo_url)
        and paths.is_within(workspace, paths.repos_root(data_root))
        and workspace.resolve() != paths.repos_root(data_root).resolve()
        and not workspace.exists()
    )


async def prepare_workspace(
    request: RunRequest, data_root: Path, *, timeout_s: float = CLONE_TIMEOUT_S
) -> None:
    if not needs_clone(request, data_root):
        _make_dir(Path(request.workspace))
        return
    url = request.repo_url or ""
    if not CLONE_URL.match(url):
        raise CloneFailed("the repo's clone URL is not a URL or an absolute path")
    await clone(url, Path(request.workspace), timeout_s=timeout_s)


def _make_dir(path: Path) -> None:
    # Codex refuses a cwd that does not exist; the orchestrator may not have created it yet.
    path.mkdir(parents=True, exist_ok=True)


def _place(partial: Path, dest: Path) -> None:
    try:
        partial.rename(dest)
    except OSError:
        if not dest.exists():
            raise
    finally:  # another run's clone got there first: ours goes
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)


async def clone(url: str, dest: Path, *, timeout_s: float) -> None:
    _make_dir(dest.parent)
    partial = dest.parent / f".{dest.name}.clone-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = await asyncio.create_subprocess_exec(
        "git", "clone", "--quiet", "--", url, str(partial),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        shutil.rmtree(partial, ignore_errors=True)
        raise CloneFailed(f"git clone took longer than {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise CloneFailed(f"git clone exited {proc.returncode}: {err.decode(errors='replace')[-ERROR_TAIL:]}")
    _place(partial, dest)

"""The sandbox probe through the real, pinned `codex sandbox`: replicas sharing one CODEX_HOME
probe at the same moment (two runners starting, one restarting beside another), and each must get
its own verdict — a chaos run once saw a runner refuse every sealed run because another
replica's probe removed the marker it was looking for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codex_broker.libs import codex_sandbox
from codex_broker.libs.codex_bin import find_codex_bin

pytestmark = pytest.mark.codex


def test_probes_at_the_same_moment_on_one_home_all_pass(tmp_path: Path) -> None:
    codex = find_codex_bin()
    assert codex is not None, "the pinned Codex CLI is installed by ./run test"
    home, directory = tmp_path / "home", tmp_path / "home" / "tmp" / "sandbox-probe"
    with ThreadPoolExecutor(max_workers=6) as pool:
        verdicts = list(pool.map(lambda _: codex_sandbox.probe(codex, directory, home), range(6)))
    assert verdicts == [None] * 6
    assert list(directory.iterdir()) == []  # each probe removes its own directory


def test_a_missing_cli_is_said(tmp_path: Path) -> None:
    verdict = codex_sandbox.probe(None, tmp_path / "p", tmp_path / "h")
    assert verdict == "the Codex CLI was not found (CODEX_BIN)"

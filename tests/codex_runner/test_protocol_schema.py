"""The checked-in protocol models match the installed (pinned) Codex CLI.

Fails when `codex app-server generate-json-schema` of the installed Codex differs from
protocol/schema.json in any type the runner uses, or when generated.py is stale.
Fix: scripts/regen-codex-protocol.sh, review the diff, adapt translate.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from codex_broker.codex_runner.protocol import regen
from codex_broker.libs.codex_bin import CODEX_VERSION, find_codex_bin, project_root

pytestmark = pytest.mark.codex

PROTOCOL = Path(regen.__file__).parent


def test_installed_codex_is_the_pinned_version() -> None:
    codex = find_codex_bin()
    assert codex, "the pinned Codex CLI is not installed (scripts/install-codex.sh)"
    version = subprocess.run([codex, "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert CODEX_VERSION in version.stdout


def test_checked_in_schema_matches_installed_codex(tmp_path: Path) -> None:
    codex = find_codex_bin()
    assert codex
    out = tmp_path / "schema"
    subprocess.run([codex, "app-server", "generate-json-schema", "--out", str(out)], check=True, timeout=120)
    fresh = regen.build_subset(out)
    checked_in = json.loads((PROTOCOL / "schema.json").read_text(encoding="utf-8"))
    changed = sorted(
        name
        for name in set(fresh["definitions"]) | set(checked_in["definitions"])
        if fresh["definitions"].get(name) != checked_in["definitions"].get(name)
    )
    assert not changed, f"protocol types changed (run scripts/regen-codex-protocol.sh): {changed[:20]}"
    assert regen.dumps(fresh) == (PROTOCOL / "schema.json").read_text(encoding="utf-8")


def test_generated_models_are_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project_root())  # the formatter reads the project's ruff settings
    schema = tmp_path / "schema.json"
    schema.write_text((PROTOCOL / "schema.json").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "generated.py"
    regen.generate_models(schema, out)
    assert out.read_text(encoding="utf-8") == (PROTOCOL / "generated.py").read_text(encoding="utf-8"), (
        "generated.py is stale: run scripts/regen-codex-protocol.sh"
    )

"""Rolling upgrades run two releases side by side, so every stream entry the previous minor
release writes must decode with today's contracts — and what today's code writes for the same
content must still decode with the previous release's (docs/architecture.md, "Contracts across
releases"). The entries are fixtures written by that release's own contracts.py
(tests/contract_samples.py, from the ref in meta.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from codex_broker.libs import contracts
from tests import contract_samples

FIXTURES = contract_samples.OUT
META = json.loads((FIXTURES / contract_samples.META_FILE).read_text())
PREVIOUS = contract_samples.load_contracts(
    (FIXTURES / contract_samples.SOURCE_FILE).read_text(), "codex_broker_previous_contracts_test"
)


def _samples() -> list[tuple[str, str, str]]:
    rows = []
    for name in META["models"]:
        for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
            entry = json.loads(line)
            rows.append((name, entry["sample"], entry["data"]))
    return rows


SAMPLES = _samples()


def _today(name: str) -> type[BaseModel]:
    model = getattr(contracts, name, None)
    assert isinstance(model, type) and issubclass(model, contracts.Contract), (
        f"{name} is gone from contracts.py"
    )
    return model


def _contains(new: Any, old: Any) -> bool:
    """Every value the old entry carried is still there, unchanged (new fields may be added)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _contains(new[k], v) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(new) == len(old) and all(map(_contains, new, old))
    return bool(new == old)


def test_every_previous_contract_has_samples_of_every_kind() -> None:
    assert set(META["models"]) == set(contract_samples.contract_models(PREVIOUS))
    kinds = {sample for name, sample, _ in SAMPLES if name == "RunEvent"}
    assert {"kind=completed", "kind=interrupted", "kind=failed", "kind=text_delta"} <= kinds
    payloads = {sample for name, sample, _ in SAMPLES if name == "OutboundAction"}
    assert {"payload:PostPayload", "payload:ProgressPayload", "payload:DownloadPayload"} <= payloads


@pytest.mark.parametrize(("name", "sample", "data"), SAMPLES, ids=[f"{n}[{s}]" for n, s, _ in SAMPLES])
def test_an_entry_of_the_previous_release_decodes_today(name: str, sample: str, data: str) -> None:
    message = contracts.decode(_today(name), data)
    assert _contains(json.loads(contracts.encode(message)), json.loads(data)), sample


@pytest.mark.parametrize(("name", "sample", "data"), SAMPLES, ids=[f"{n}[{s}]" for n, s, _ in SAMPLES])
def test_what_today_writes_for_it_decodes_with_the_previous_release(
    name: str, sample: str, data: str
) -> None:
    rewritten = contracts.encode(contracts.decode(_today(name), data))
    PREVIOUS.decode(getattr(PREVIOUS, name), rewritten)


def test_the_fixtures_are_what_the_script_writes(tmp_path: Path) -> None:
    """No hand edits: regenerating from the recorded ref gives the committed files."""
    meta = contract_samples.generate(META["ref"], tmp_path)
    assert meta == META
    for path in sorted(FIXTURES.iterdir()):
        assert (tmp_path / path.name).read_text() == path.read_text(), path.name

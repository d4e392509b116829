"""Typed records for the hashes services share: each model owns its hash's encoding.

A hash is read as `Model.from_hash(raw)` (bytes or str keys and values, missing fields take their
defaults) and written as `model.to_hash()` or, for a change, `changes(before, after)` — the HSET
mapping and the HDEL fields that turn one into the other. No caller spells a field name or an
encoding ("1"/"0", milliseconds as decimal strings) of its own; a field another service adds
(`codex_state*`, written by the http-api) is a field of the model too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar, get_args

Phase = Literal["idle", "debouncing", "running"]
PHASES: tuple[str, ...] = get_args(Phase)

R = TypeVar("R", bound="HashRecord")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(annotation: Any, raw: str) -> Any:
    """`annotation` is the field's type as written (a string: annotations are postponed)."""
    if annotation == "bool":
        return raw == "1"
    if annotation == "int":
        return int(raw) if raw else 0
    if annotation == "int | None":
        return int(raw) if raw else None
    return raw


def _encode(value: Any) -> str | None:
    """None: the field is absent from the hash."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else None  # a false flag is no field at all (as HDEL leaves it)
    return str(value)


@dataclass(frozen=True)
class HashRecord:
    """Base: field names are the hash's field names; `None`, `False` and "" mean "absent"."""

    @classmethod
    def from_hash(cls: type[R], raw: Mapping[Any, Any] | None) -> R:
        values = {_text(k): _text(v) for k, v in (raw or {}).items()}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in values:
                kwargs[f.name] = _decode(f.type, values[f.name])
        return cls(**kwargs)

    def to_hash(self) -> dict[str, str]:
        encoded = ((f.name, _encode(getattr(self, f.name))) for f in fields(self))
        return {name: value for name, value in encoded if value not in (None, "")}

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)


def changes(before: HashRecord, after: HashRecord) -> tuple[dict[str, str], list[str]]:
    """(HSET mapping, HDEL fields) that turn the stored `before` into `after`."""
    old, new = before.to_hash(), after.to_hash()
    mapping = {name: value for name, value in new.items() if old.get(name) != value}
    removed = [name for name in old if name not in new]
    return mapping, removed


@dataclass(frozen=True)
class TurnState(HashRecord):
    """`session-state:<key>`: where the session's turn lifecycle stands (orchestrator/machine.py
    decides every change of the first block; the http-api records what Codex said about it)."""

    state: str = "idle"  # a Phase; kept as stored so that an unknown value is seen, not hidden
    active_run_id: str = ""
    turn_active: bool = False  # the runner reported turn_started: a message can steer
    waiting: bool = False  # in the MAX_ACTIVE_RUNS line for a run slot
    run_started_ms: int | None = None
    last_final_action: str = ""  # the thread's latest answer action: the next one waits for it
    # written by the http-api when Codex posts or reports through the local API
    codex_final_posted_run: str = ""
    codex_state: str = ""
    codex_state_reason: str = ""
    codex_state_run: str = ""
    codex_state_at_ms: int | None = None

    @property
    def phase(self) -> Phase:
        return self.state if self.state in PHASES else "idle"  # type: ignore[return-value]

    @property
    def running(self) -> bool:
        return self.phase == "running"

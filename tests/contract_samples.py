"""Sample stream entries of every contract as an older release wrote them — the fixtures of
tests/foundation/test_contracts_previous_minor.py (rolling upgrades run two releases at once).

    uv run python -m tests.contract_samples --ref <previous minor's tag or commit>

reads libs/src/codex_broker/libs/contracts.py at that ref (`git show`), builds entries of every
`Contract` model with that release's own code — required fields only, every field set, one per
value of each Literal field and one per member of each union (so every `kind`, every outbound
payload) — encodes them with that release's `encode`, and writes them, the contracts source and
where they came from to tests/fixtures/contracts/previous/. Values are fixed (no clock, no
random ids), so regenerating from the same ref gives the same files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = "libs/src/codex_broker/libs/contracts.py"
OUT = ROOT / "tests" / "fixtures" / "contracts" / "previous"
SOURCE_FILE = "contracts_source.py.txt"  # not importable by accident, not linted as today's code
META_FILE = "meta.json"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def load_contracts(source: str, name: str) -> types.ModuleType:
    """An older contracts.py as a module of its own (its models resolve their annotations in it)."""
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def contract_models(module: types.ModuleType) -> dict[str, type[BaseModel]]:
    base = module.Contract
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
    }


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    return [annotation]


def value_for(annotation: Any, field: str) -> Any:
    """One valid JSON value of a type (the first member of a union, the first Literal value)."""
    annotation = _members(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin is list:
        return [value_for(typing.get_args(annotation)[0], field)]
    if origin is dict:
        return {"key": "value"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return full(annotation)
    simple: dict[Any, Any] = {
        str: f"sample-{field}",
        bool: True,
        int: 1,
        float: 1.5,
        datetime: WHEN.isoformat(),
    }
    return simple.get(annotation, f"sample-{field}")


def _required(info: FieldInfo) -> bool:
    return info.is_required()


def _made_at_write(info: FieldInfo) -> Any:
    """A default made when the writer builds the message (ids, timestamps) is fixed here, so the
    fixtures do not change from one generation to the next; an empty list stays empty."""
    made = info.default_factory() if info.default_factory is not None else None  # type: ignore[call-arg]
    return made if isinstance(made, list | dict) else None


def minimal(model: type[BaseModel]) -> dict[str, Any]:
    data = {}
    for name, info in model.model_fields.items():
        if _required(info):
            data[name] = value_for(info.annotation, name)
        elif info.default_factory is not None:
            made = _made_at_write(info)
            data[name] = made if made is not None else value_for(info.annotation, name)
    return data


def full(model: type[BaseModel]) -> dict[str, Any]:
    data = {n: value_for(i.annotation, n) for n, i in model.model_fields.items()}
    data.pop("v", None)  # the model's own version, as every writer leaves it
    return data


def variants(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Named raw samples: minimal, full, and per Literal value / union member of each field."""
    found = {"minimal": minimal(model), "full": full(model)}
    for name, info in model.model_fields.items():
        if name == "v":
            continue
        members = _members(info.annotation)
        literal = members[0] if typing.get_origin(members[0]) is typing.Literal else None
        if literal is not None:
            for value in typing.get_args(literal):
                found[f"{name}={value}"] = {**full(model), name: value}
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(models) > 1:
            for member in models:
                found[f"{name}:{member.__name__}"] = {**full(model), name: full(member)}
    return found


def entries(module: types.ModuleType) -> dict[str, list[dict[str, str]]]:
    """Model name → [{sample, data}] where data is the stream entry that release wrote."""
    written: dict[str, list[dict[str, str]]] = {}
    for name, model in sorted(contract_models(module).items()):
        rows = []
        for sample, raw in variants(model).items():
            message = model.model_validate(raw)  # that release's own validation
            rows.append({"sample": sample, "data": module.encode(message)})
        written[name] = rows
    return written


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def package_version(ref: str) -> str:
    for line in _git("show", f"{ref}:libs/pyproject.toml").splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def generate(ref: str, out: Path = OUT) -> dict[str, Any]:
    source = _git("show", f"{ref}:{CONTRACTS}")
    module = load_contracts(source, "codex_broker_previous_contracts")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        old.unlink()
    written = entries(module)
    for name, rows in written.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    (out / SOURCE_FILE).write_text(source)
    meta = {
        "ref": ref,
        "commit": _git("rev-parse", f"{ref}^{{commit}}").strip(),
        "package_version": package_version(ref),
        "models": sorted(written),
        "generated_by": f"uv run python -m tests.contract_samples --ref {ref}",
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", required=True, help="the previous minor release: its tag (vX.Y.0) or commit")
    meta = generate(parser.parse_args(argv).ref)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

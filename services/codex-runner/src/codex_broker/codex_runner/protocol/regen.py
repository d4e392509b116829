"""Regenerate the checked-in protocol: the part of `codex app-server generate-json-schema` that
the runner sends and parses, as one self-contained JSON Schema bundle (`schema.json`), and the
pydantic models generated from it (`generated.py`, by datamodel-code-generator).

The full output of Codex 0.169 is ~4.7 MB over 300+ files; generating models from all of it
yields ~11k lines with hundreds of numbered name collisions. We keep the root types we use plus
everything they reference, so the generated module stays small, readable and fast to import.
Run through scripts/regen-codex-protocol.sh; a test compares a fresh subset with the checked-in
one so that a Codex upgrade which changes any of these types fails loudly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Types the runner sends (params) and parses (responses, notifications, server requests).
ROOTS: tuple[str, ...] = (
    "v1/InitializeParams",
    "v1/InitializeResponse",
    "v2/ThreadStartParams",
    "v2/ThreadStartResponse",
    "v2/ThreadResumeParams",
    "v2/ThreadResumeResponse",
    "v2/TurnStartParams",
    "v2/TurnStartResponse",
    "v2/TurnSteerParams",
    "v2/TurnSteerResponse",
    "v2/TurnInterruptParams",
    "v2/TurnInterruptResponse",
    "v2/TurnStartedNotification",
    "v2/TurnCompletedNotification",
    "v2/ItemStartedNotification",
    "v2/ItemCompletedNotification",
    "v2/AgentMessageDeltaNotification",
    "v2/ThreadTokenUsageUpdatedNotification",
    "v2/TurnPlanUpdatedNotification",
    "v2/ErrorNotification",
    "v2/ServerRequestResolvedNotification",
    "CommandExecutionRequestApprovalParams",
    "CommandExecutionRequestApprovalResponse",
    "FileChangeRequestApprovalParams",
    "FileChangeRequestApprovalResponse",
    "PermissionsRequestApprovalParams",
    "PermissionsRequestApprovalResponse",
    "JSONRPCErrorError",
)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            yield ref.removeprefix("#/definitions/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def build_subset(schema_dir: Path, roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    """One bundle: every root (by its title) and the definitions reachable from the roots."""
    pool: dict[str, Any] = {}
    root_names: list[str] = []
    for root in roots:
        document = json.loads((schema_dir / f"{root}.json").read_text(encoding="utf-8"))
        for name, definition in document.get("definitions", {}).items():
            if name in pool and pool[name] != definition:
                raise ValueError(f"definition {name} differs between schema files")
            pool[name] = definition
        body = {k: v for k, v in document.items() if k not in ("$schema", "definitions")}
        title = str(body.get("title") or root.rsplit("/", 1)[-1])
        pool[title] = body
        root_names.append(title)
    keep: set[str] = set()
    todo = list(root_names)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in pool:
            raise ValueError(f"unresolved reference #/definitions/{name}")
        keep.add(name)
        todo.extend(_refs(pool[name]))
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {name: pool[name] for name in sorted(keep)},
    }


def dumps(bundle: dict[str, Any]) -> str:
    return json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


HEADER = (
    "# Generated from `codex app-server generate-json-schema` of the pinned Codex CLI by\n"
    "# scripts/regen-codex-protocol.sh (protocol/regen.py). Do not edit by hand."
)
CODEGEN_OPTIONS: tuple[str, ...] = (
    "--input-file-type=jsonschema",
    "--output-model-type=pydantic_v2.BaseModel",
    "--target-python-version=3.11",
    "--use-union-operator",
    "--use-standard-collections",
    "--enum-field-as-literal=all",
    "--use-double-quotes",
    "--disable-timestamp",
    "--use-title-as-name",
    "--collapse-root-models",
    "--formatters=builtin",  # deterministic wherever the output goes (ruff would pick up local config)
)


def generate_models(schema_json: Path, out_py: Path) -> None:
    """Run datamodel-code-generator (a dev dependency) on the subset bundle."""
    subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "datamodel_code_generator",
            f"--input={schema_json}",
            f"--output={out_py}",
            f"--custom-file-header={HEADER}",
            *CODEGEN_OPTIONS,
        ],
        check=True,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m codex_broker.codex_runner.protocol.regen SCHEMA_DIR OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(argv[1])
    schema_json = out_dir / "schema.json"
    schema_json.write_text(dumps(build_subset(Path(argv[0]))), encoding="utf-8")
    generate_models(schema_json, out_dir / "generated.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

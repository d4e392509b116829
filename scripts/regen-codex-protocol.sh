#!/usr/bin/env bash
# Regenerate the codex-runner protocol models from the pinned Codex CLI:
#   codex app-server generate-json-schema → protocol/schema.json (the subset we use)
#                                          → protocol/generated.py (pydantic models)
# tests/codex_runner/test_protocol_schema.py fails when the installed Codex differs.
set -euo pipefail
cd "$(dirname "$0")/.."
codex="${CODEX_BIN:-.tools/codex/node_modules/.bin/codex}"
out=services/codex-runner/src/codex_broker/codex_runner/protocol
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$codex" app-server generate-json-schema --out "$tmp/schema"
uv run python -m codex_broker.codex_runner.protocol.regen "$tmp/schema" "$out"
echo "regenerated $out/schema.json and $out/generated.py from $("$codex" --version)"

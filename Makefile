# MCP Conductor. `make run` starts the MCP server on stdio with the example
# configuration; `make test` installs what the tests need and runs them all.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/tools
BIN := $(CURDIR)/bin/conductor
DENO := $(TOOLS)/node_modules/.bin/deno
# Tests and `make run` use the Deno and MCP servers installed in tools/.
export MCP_CONDUCTOR_DENO ?= $(DENO)
export MCP_CONDUCTOR_TEST_CACHE ?= $(CURDIR)/.cache

.PHONY: run build test test-short bench eval tools redis setup lint clean

build:
	$(GO) build -o $(BIN) ./cmd/conductor

# Node packages: Deno (from the deno npm package) and the MCP servers used by
# the example configuration and the integration tests.
tools: $(TOOLS)/node_modules/.installed
$(TOOLS)/node_modules/.installed: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	cd $(TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# redis-server from Debian for the store tests.
redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server is missing: sudo apt-get install redis-server" >&2; exit 1; fi; }

# Installs the embedding model (and allowed packages) into the cache.
setup: build tools
	MCP_CONDUCTOR_CACHE=$${MCP_CONDUCTOR_CACHE:-$(MCP_CONDUCTOR_TEST_CACHE)} $(BIN) setup

run: build tools
	@mkdir -p $${HOME}/.mcp-conductor/workspace
	@echo "conductor: MCP server on stdin/stdout (examples/conductor.yaml); Ctrl-D or Ctrl-C to stop" >&2
	$(BIN) stdio --config examples/conductor.yaml

test: tools redis setup
	CI=$${CI:-true} MCP_CONDUCTOR_CACHE=$(MCP_CONDUCTOR_TEST_CACHE) $(GO) test -race -count=1 -timeout 25m ./...

test-short: tools
	$(GO) test -short ./...

bench: build tools redis setup
	MCP_CONDUCTOR_CACHE=$(MCP_CONDUCTOR_TEST_CACHE) ./scripts/bench.sh 2>&1 | tee bench.out

# Retrieval quality on shared/eval: BM25, vectors and hybrid side by side.
eval: build setup
	MCP_CONDUCTOR_CACHE=$(MCP_CONDUCTOR_TEST_CACHE) $(BIN) eval --tools ../shared/eval/tools.jsonl --queries ../shared/eval/queries.jsonl

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

clean:
	rm -rf bin .cache

#!/usr/bin/env bash
# Runs every benchmark that backs a figure in the README, each with the
# iteration count that keeps `make bench` within a few minutes on 2 cores.
# Figures are ratios against baselines measured in the same benchmark
# (bare `deno run`, a direct Go SDK call), because these machines are noisy.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
bench() { # package, pattern, benchtime
	echo "== $1 $2"
	go test -run '^$' -bench "$2" -benchtime "$3" -timeout 30m "$1" 2>&1 | grep -E '^(Benchmark|ok|FAIL|---|panic)|\s(ms|ratio|MB|KB|tokens)' || status=1
}
bench ./internal/sandbox 'BenchmarkExecute$|BenchmarkBareDeno$' 30x
bench ./internal/sandbox 'BenchmarkPool$|BenchmarkIdleProcessRSS' 40x
bench ./internal/server 'BenchmarkExecuteCode$' 40x
bench ./internal/server 'BenchmarkHTTPExecuteCode' 300x
bench . 'BenchmarkAllowedPackage$' 20x
bench . 'BenchmarkParallelToolCalls' 10x
bench . 'BenchmarkBridgeOverhead' 40x
bench . 'BenchmarkTwoMessageTokens' 1x
bench . 'BenchmarkConversationMemory' 1x
bench ./internal/deps 'BenchmarkInstall' 1x
bench ./internal/catalog 'BenchmarkSearch$|BenchmarkEmbedQuery' 500x
bench ./internal/catalog 'BenchmarkSearchEndToEnd' 1000x
bench ./internal/catalog 'BenchmarkBuild' 1x
bench ./internal/store 'BenchmarkStore' 2000x
bench ./internal/embed 'BenchmarkEmbed/|BenchmarkLoad|BenchmarkQuantizedAgreement' 20x
bench ./internal/conversation 'BenchmarkCoUsageReplay' 1x
bench ./internal/tokenbench 'BenchmarkConductorRSS' 1x
echo "== token table"
go test -count=1 -run 'TestTokenTable' -v ./internal/tokenbench/ 2>&1 | grep -vE '^(=== RUN|--- PASS|PASS)' || status=1
exit $status

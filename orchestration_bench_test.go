package conductor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/config"
)

// execMS runs code and returns its wall time as the caller sees it.
func execMS(b *testing.B, run func() error) float64 {
	b.Helper()
	start := time.Now()
	if err := run(); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(start).Microseconds()) / 1000
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkParallelToolCalls: one program makes three calls of a tool that
// takes 300 ms, with Promise.all and one after the other. The original
// README claims 300 ms vs 900 ms.
func BenchmarkParallelToolCalls(b *testing.B) {
	rec := filepath.Join(b.TempDir(), "go.log")
	c := newConductor(b, []config.Server{goServer(b, "go", rec)}, nil)
	conv := newConv(b, c)
	const parallel = `import * as go from "./mcp/go";
await Promise.all([go.sleep({ms: 300, tag: "p"}), go.sleep({ms: 300, tag: "p"}), go.sleep({ms: 300, tag: "p"})]);`
	const sequential = `import * as go from "./mcp/go";
await go.sleep({ms: 300, tag: "s"}); await go.sleep({ms: 300, tag: "s"}); await go.sleep({ms: 300, tag: "s"});`
	do := func(code string) func() error {
		return func() error {
			res := execute(b, c, conv, code)
			if res.Error != nil {
				b.Fatalf("program failed: %+v", res.Error)
			}
			return nil
		}
	}
	do(parallel)() // warm: module written, servers connected
	var par, seq []float64
	for b.Loop() {
		par = append(par, execMS(b, do(parallel)))
		seq = append(seq, execMS(b, do(sequential)))
	}
	p, s := median(par), median(seq)
	b.ReportMetric(p, "promise.all-ms")
	b.ReportMetric(s, "sequential-ms")
	b.ReportMetric(s/p, "seq/par")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBridgeOverhead: the time one tool call adds to a program (a
// program with one call minus an empty program: sandbox → bridge → hub →
// server and back) against the same call made directly with the Go SDK
// client over stdio to another instance of the same server.
func BenchmarkBridgeOverhead(b *testing.B) {
	// No RECORD_FILE: the recorder fsyncs every call, which would measure
	// the disk and not the bridge.
	srv := goServer(b, "go", "")
	c := newConductor(b, []config.Server{srv}, nil)
	conv := newConv(b, c)

	cmd := exec.Command(srv.Command, srv.Args...)
	cmd.Env = append(os.Environ(), modeEnv+"=server")
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	ctx := context.Background()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })

	const empty = `1`
	const oneCall = `import * as go from "./mcp/go"; await go.echo({text: "x"})`
	program := func(code string) func() error {
		return func() error {
			res := execute(b, c, conv, code)
			if res.Error != nil {
				b.Fatalf("program failed: %+v", res.Error)
			}
			return nil
		}
	}
	direct := func() error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
		if err == nil && res.IsError {
			b.Fatalf("direct call: %+v", res.Content)
		}
		return err
	}
	// Warm everything: pool, module file, schema cache, connections.
	for range 3 {
		program(empty)()
		program(oneCall)()
		direct()
	}
	// Paced like an agent (think time between programs, not measured), so
	// every program finds its warm sandbox and the direct call does not
	// race the pool's refill: back to back, the pool's boots and not the
	// bridge would decide the difference.
	const think = 200 * time.Millisecond
	var emptyMS, callMS, directMS []float64
	for b.Loop() {
		time.Sleep(think)
		emptyMS = append(emptyMS, execMS(b, program(empty)))
		time.Sleep(think)
		callMS = append(callMS, execMS(b, program(oneCall)))
		time.Sleep(think)
		directMS = append(directMS, execMS(b, direct))
	}
	added := median(callMS) - median(emptyMS)
	d := median(directMS)
	b.ReportMetric(median(emptyMS), "empty-program-ms")
	b.ReportMetric(median(callMS), "one-call-program-ms")
	b.ReportMetric(added, "bridge-call-ms")
	b.ReportMetric(d, "direct-call-ms")
	if d > 0 {
		b.ReportMetric(added/d, "bridge/direct")
	}
	b.ReportMetric(0, "ns/op")
}

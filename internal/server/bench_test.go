package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const trivialProgram = "1 + 1"

// BenchmarkExecuteCode measures execute_code of a trivial program over a live
// MCP session against a bare `deno run` of the same file, in the same run.
// It reports p50/p95 of both and their ratios (lower is better).
func BenchmarkExecuteCode(b *testing.B) {
	c := newConductor(b, nil)
	cs := connectSession(b, New(c, nil))
	ctx := context.Background()
	call := func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code", Arguments: map[string]any{"code": trivialProgram}})
		if err != nil || res.IsError {
			b.Fatalf("execute_code: %v %+v", err, res)
		}
	}
	call() // warm-up: conversation directory, harness file

	dir := b.TempDir()
	file := filepath.Join(dir, "trivial.ts")
	if err := os.WriteFile(file, []byte(trivialProgram+";\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	deno := c.Deno().Path
	bare := func() {
		cmd := exec.Command(deno, "run", "--no-prompt", "--no-config", file)
		cmd.Env = []string{"HOME=" + dir, "DENO_DIR=" + filepath.Join(dir, "deno"), "NO_COLOR=1", "DENO_NO_UPDATE_CHECK=1"}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("bare deno: %v: %s", err, out)
		}
	}
	bare()

	var conductorTimes, bareTimes []time.Duration
	for b.Loop() {
		t0 := time.Now()
		call()
		conductorTimes = append(conductorTimes, time.Since(t0))
		t0 = time.Now()
		bare()
		bareTimes = append(bareTimes, time.Since(t0))
	}
	cp50, cp95 := percentiles(conductorTimes)
	bp50, bp95 := percentiles(bareTimes)
	b.ReportMetric(ms(cp50), "exec-p50-ms")
	b.ReportMetric(ms(cp95), "exec-p95-ms")
	b.ReportMetric(ms(bp50), "bare-deno-p50-ms")
	b.ReportMetric(ms(bp95), "bare-deno-p95-ms")
	b.ReportMetric(ms(cp50)/ms(bp50), "p50-ratio")
	b.ReportMetric(ms(cp95)/ms(bp95), "p95-ratio")
}

func percentiles(ds []time.Duration) (p50, p95 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*95/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const trivialProgram = `const x = 1 + 1; console.log(x);`

// BenchmarkExecute is a trivial program through Runner.Run; compare with
// BenchmarkBareDeno in the same run.
func BenchmarkExecute(b *testing.B) {
	e := newTestEnv(b)
	spec := Spec{Code: trivialProgram, Dir: e.dir, Timeout: 10 * time.Second}
	for b.Loop() {
		res, err := e.r.Run(context.Background(), spec)
		if err != nil || res.Error != nil || res.Stdout != "2\n" {
			b.Fatalf("run: %v %+v", err, res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}

// BenchmarkBareDeno is `deno run` of the same program in a file.
func BenchmarkBareDeno(b *testing.B) {
	deno := denoForTest(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "main.js")
	if err := os.WriteFile(file, []byte(trivialProgram), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd := exec.Command(deno, "run", "--no-prompt", "--no-config", file)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "DENO_DIR=" + filepath.Join(dir, "cache"), "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}
		out, err := cmd.Output()
		if err != nil || string(out) != "2\n" {
			b.Fatalf("deno: %v %q", err, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}

// bareDeno times n runs of `deno run` on the trivial program in a file.
func bareDeno(b *testing.B, n int) []time.Duration {
	b.Helper()
	deno := denoForTest(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "main.js")
	if err := os.WriteFile(file, []byte(trivialProgram), 0o644); err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for range n {
		cmd := exec.Command(deno, "run", "--no-prompt", "--no-config", file)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "DENO_DIR=" + filepath.Join(dir, "cache"), "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}
		t0 := time.Now()
		got, err := cmd.Output()
		out = append(out, time.Since(t0))
		if err != nil || string(got) != "2\n" {
			b.Fatalf("deno: %v %q", err, got)
		}
	}
	return out
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newBenchPool is a Runner with the default pool figures, warming the
// profile of the benchmark's Spec.
func newBenchPool(b *testing.B) *testEnv {
	b.Helper()
	base := b.TempDir()
	ws := filepath.Join(base, "workspace")
	r, err := New(Options{Deno: denoForTest(b), Workspace: ws, DenoDir: filepath.Join(base, "deno"), Home: filepath.Join(base, "home"),
		Pool: PoolOptions{Max: DefaultPoolMax, Min: DefaultPoolMin, PerConversation: DefaultPoolPerConversation,
			IdleTimeout: DefaultPoolIdleTimeout, Warm: &Profile{}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	dir := filepath.Join(ws, "c1")
	if err := r.PrepareDir(dir); err != nil {
		b.Fatal(err)
	}
	return &testEnv{r: r, ws: ws, dir: dir}
}

// BenchmarkPool is a trivial program through a warm pool, against bare
// `deno run` timed in the same benchmark: "paced" leaves an agent's think
// time (75 ms, not measured) between calls, "back-to-back" none.
func BenchmarkPool(b *testing.B) {
	bare := bareDeno(b, 20)
	for _, c := range []struct {
		name  string
		think time.Duration
	}{{"paced", 75 * time.Millisecond}, {"back-to-back", 0}} {
		b.Run(c.name, func(b *testing.B) {
			e := newBenchPool(b)
			spec := Spec{Code: trivialProgram, Dir: e.dir, Timeout: 10 * time.Second}
			time.Sleep(200 * time.Millisecond) // the first spare boots
			var lat []time.Duration
			for b.Loop() {
				if c.think > 0 {
					b.StopTimer()
					time.Sleep(c.think)
					b.StartTimer()
				}
				t0 := time.Now()
				res, err := e.r.Run(context.Background(), spec)
				lat = append(lat, time.Since(t0))
				if err != nil || res.Error != nil || res.Stdout != "2\n" {
					b.Fatalf("run: %v %+v", err, res)
				}
			}
			reportLatency(b, lat, bare)
			st := e.r.PoolStats()
			b.ReportMetric(float64(st.Hits)/float64(max(1, st.Hits+st.Misses)), "hit-rate")
		})
	}
}

func reportLatency(b *testing.B, lat, bare []time.Duration) {
	bp50 := pct(bare, 0.5)
	b.ReportMetric(ms(bp50), "bare-p50-ms")
	b.ReportMetric(ms(pct(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 0.95)), "p95-ms")
	b.ReportMetric(float64(pct(lat, 0.5))/float64(bp50), "p50/bare")
	b.ReportMetric(float64(pct(lat, 0.95))/float64(bp50), "p95/bare")
}

// BenchmarkPoolSustained runs 20 executions per second for
// CONDUCTOR_BENCH_SUSTAINED (a duration, e.g. 60s; skipped when unset) and
// compares the p95 of the first 10 s with the last 10 s.
func BenchmarkPoolSustained(b *testing.B) {
	total, err := time.ParseDuration(os.Getenv("CONDUCTOR_BENCH_SUSTAINED"))
	if err != nil || total < 20*time.Second {
		b.Skip("set CONDUCTOR_BENCH_SUSTAINED=60s (at least 20s)")
	}
	bare := bareDeno(b, 20)
	e := newBenchPool(b)
	spec := Spec{Code: trivialProgram, Dir: e.dir, Timeout: 10 * time.Second}
	time.Sleep(200 * time.Millisecond)
	type sample struct {
		at  time.Duration
		lat time.Duration
	}
	// One measurement whatever b.N: its length is the variable's.
	{
		var samples []sample
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		for time.Since(start) < total {
			<-tick.C
			t0 := time.Now()
			res, err := e.r.Run(context.Background(), spec)
			samples = append(samples, sample{t0.Sub(start), time.Since(t0)})
			if err != nil || res.Error != nil {
				b.Fatalf("run: %v %+v", err, res)
			}
		}
		tick.Stop()
		var first, last, all []time.Duration
		for _, s := range samples {
			all = append(all, s.lat)
			if s.at < 10*time.Second {
				first = append(first, s.lat)
			}
			if s.at >= total-10*time.Second {
				last = append(last, s.lat)
			}
		}
		reportLatency(b, all, bare)
		b.ReportMetric(ms(pct(first, 0.95)), "p95-first10s-ms")
		b.ReportMetric(ms(pct(last, 0.95)), "p95-last10s-ms")
		b.ReportMetric(float64(len(samples))/time.Since(start).Seconds(), "exec/s")
	}
}

// BenchmarkIdleProcessRSS measures what one ready spare costs: its whole
// resident set, and the private part (RssAnon; the rest are file pages of
// the Deno binary, shared by every process).
func BenchmarkIdleProcessRSS(b *testing.B) {
	e := newBenchPool(b)
	{ // one measurement whatever b.N
		var pids []int
		for len(pids) == 0 {
			time.Sleep(20 * time.Millisecond)
			pids = e.r.poolPids()
		}
		time.Sleep(300 * time.Millisecond) // ready and settled
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/status")
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []struct{ field, unit string }{{"VmRSS:", "rss-MB"}, {"RssAnon:", "private-MB"}} {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, f.field) {
					kb, _ := strconv.Atoi(strings.Fields(l)[1])
					b.ReportMetric(float64(kb)/1024, f.unit)
				}
			}
		}
	}
}

package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

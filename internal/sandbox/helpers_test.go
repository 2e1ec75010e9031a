package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

// denoForTest finds the Deno binary that `make test` installs. Outside CI a
// missing Deno skips the test; under CI it fails it.
func denoForTest(t testing.TB) string { return testenv.Deno(t) }

type testEnv struct {
	r   *Runner
	ws  string
	dir string
}

// testPool, set by CONDUCTOR_TEST_POOL=1 (TestSuiteWithPool does), runs
// every test's Runner with a warm pool: the whole suite then proves that
// pooled processes keep runs apart as fresh ones do.
var testPool = os.Getenv("CONDUCTOR_TEST_POOL") == "1"

// testPoolOptions warm the profile the security suite runs with (a grant on
// the workspace root, 128 MB), so first runs take a pooled process too.
func testPoolOptions(ws string) PoolOptions {
	return PoolOptions{Max: 4, Min: 1, PerConversation: 2, Spawns: 1,
		Warm: &Profile{Permissions: config.Permissions{Read: []string{ws}, Write: []string{ws}}, MemoryMB: 128}}
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvPool(t, testPool)
}

func newTestEnvPool(t testing.TB, pooled bool) *testEnv {
	t.Helper()
	var pool func(ws string) PoolOptions
	if pooled {
		pool = testPoolOptions
	}
	return newTestEnvWith(t, pool)
}

// newTestEnvWith builds a Runner (with the pool options pool returns for the
// workspace, when pool is non-nil) and prepares conversation c1. Cleanup
// closes the Runner and waits until no harness process is left.
func newTestEnvWith(t testing.TB, pool func(ws string) PoolOptions, more ...func(ws string, o *Options)) *testEnv {
	t.Helper()
	base := t.TempDir()
	ws := filepath.Join(base, "workspace")
	opts := Options{
		Deno:      denoForTest(t),
		Workspace: ws,
		DenoDir:   filepath.Join(base, "cache", "deno"),
		Home:      filepath.Join(base, "cache", "home"),
	}
	if pool != nil {
		opts.Pool = pool(ws)
	}
	for _, m := range more {
		m(ws, &opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		waitNoCmdline(t, r.harness)
	})
	dir := filepath.Join(ws, "c1")
	if err := r.PrepareDir(dir); err != nil {
		t.Fatal(err)
	}
	return &testEnv{r: r, ws: ws, dir: dir}
}

func (e *testEnv) run(t testing.TB, code string, mod ...func(*Spec)) *Result {
	t.Helper()
	spec := Spec{Code: code, Dir: e.dir, Timeout: 3 * time.Second, MemoryMB: 128, MaxOutputBytes: 1 << 20}
	for _, m := range mod {
		m(&spec)
	}
	res, err := e.r.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func withPerms(p config.Permissions) func(*Spec) {
	return func(s *Spec) { s.Permissions = p }
}

package sandbox

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"go.uber.org/goleak"
)

// TestSuiteWithPool runs the security suite and the behaviour tests again,
// in a child test process whose every Runner has a warm pool: pooled
// processes must keep runs apart exactly as fresh ones do (globals,
// prototypes, localStorage, caches and temp files of TestAttackStateBetweenRuns
// included).
func TestSuiteWithPool(t *testing.T) {
	if testPool {
		t.Skip("already running with the pool")
	}
	if testing.Short() {
		t.Skip("runs the whole suite again; skipped with -short")
	}
	denoForTest(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestAttack|TestResultShapes|TestConsoleOutput|TestErrorKinds|TestWorkspacePersists|TestToolCalls|TestCancel)", "-test.count=1")
	cmd.Env = append(os.Environ(), "CONDUCTOR_TEST_POOL=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the suite fails with the pool on: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("no PASS in the output:\n%s", out)
	}
}

// newPoolEnv is a Runner with a pool and a conversation c1, with the
// security suite's grant on the workspace root.
func newPoolEnv(t *testing.T, mod func(*PoolOptions)) (*testEnv, config.Permissions) {
	t.Helper()
	e := newTestEnvWith(t, func(ws string) PoolOptions {
		p := testPoolOptions(ws)
		if mod != nil {
			mod(&p)
		}
		return p
	})
	return e, config.Permissions{Read: []string{e.ws}, Write: []string{e.ws}}
}

// eventually polls cond until it holds; the deadline only bounds a broken
// test, it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readyPids lists the pool's processes whose harness said ready.
func readyPids(r *Runner) []int {
	p := r.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, s := range p.slots {
		for _, pr := range s.procs {
			if isClosed(pr.ready) && pr.ok && !isClosed(pr.exited) {
				out = append(out, pr.pid)
			}
		}
	}
	return out
}

// TestHarnessRunsOneProgram speaks the protocol to a harness directly: a
// second "run" message, sent before or while the first program runs, is
// never executed.
func TestHarnessRunsOneProgram(t *testing.T) {
	t.Parallel()
	e := newTestEnvPool(t, false)
	perms := config.Permissions{Write: []string{e.ws}}
	args := e.r.args(128, false, flags(narrow(perms, e.ws, e.dir)))
	pr, err := e.r.start("k", e.dir, args, 128, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.kill()
	<-pr.ready
	if !pr.ok {
		t.Fatalf("the harness did not get ready: %q", pr.pre)
	}
	msg := func(secret, code string) []byte {
		b, _ := json.Marshal(map[string]any{"t": "run", "secret": secret, "code": code, "resultKey": "r", "resultMax": 1 << 20})
		return append(b, '\n')
	}
	first := `export const r = await __conductor_call("s", "t", {});`
	second := `Deno.writeTextFileSync("workspace/second", "ran"); console.log("SECOND");`
	// Two runs in one write, then a third once the first program waits on
	// its tool call.
	pr.stdin.Write(append(msg("AAAA", first), msg("BBBB", second)...))
	var out bytes.Buffer
	for {
		line, err := readLine(pr.br, maxFrame)
		out.Write(line)
		if bytes.Contains(line, []byte("\x1eAAAA:")) && bytes.Contains(line, []byte(`"t":"call"`)) {
			pr.stdin.Write(msg("CCCC", second))
			pr.stdin.Write([]byte(`{"t":"res","id":1,"ok":true,"value":"first"}` + "\n"))
		}
		if bytes.Contains(line, []byte(`"t":"done"`)) || err != nil {
			break
		}
	}
	if !bytes.Contains(out.Bytes(), []byte("\x1eAAAA:{\"t\":\"done\",\"ok\":true,\"has\":true,\"result\":\"first\"}")) {
		t.Errorf("the first program did not finish as expected: %q", out.String())
	}
	if bytes.Contains(out.Bytes(), []byte("SECOND")) || bytes.Contains(out.Bytes(), []byte("BBBB")) || bytes.Contains(out.Bytes(), []byte("CCCC")) {
		t.Errorf("a second program ran: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(e.dir, "workspace", "second")); err == nil {
		t.Error("a second program wrote its file")
	}
}

// TestPoolHandsOutEachProcessOnce runs concurrent programs through a pool
// and checks that no process served two runs and no global survived.
func TestPoolHandsOutEachProcessOnce(t *testing.T) {
	t.Parallel()
	e, perms := newPoolEnv(t, nil)
	var mu sync.Mutex
	var pids []int
	e.r.onStart = func(pid int) { mu.Lock(); pids = append(pids, pid); mu.Unlock() }
	var wg sync.WaitGroup
	const n = 12
	vals := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := e.run(t, `const seen = globalThis.mark ?? "fresh"; globalThis.mark = "used"; seen`, withPerms(perms))
			vals[i] = string(res.Value)
		}()
		if i%3 == 2 {
			wg.Wait() // bursts of three
		}
	}
	wg.Wait()
	for i, v := range vals {
		if v != `"fresh"` {
			t.Errorf("run %d saw %s, want \"fresh\"", i, v)
		}
	}
	sorted := slices.Clone(pids)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != n {
		t.Errorf("%d runs used %d distinct processes: %v", n, len(slices.Compact(slices.Clone(sorted))), pids)
	}
	if st := e.r.PoolStats(); st.Hits == 0 {
		t.Errorf("no run got a pooled process: %+v", st)
	}
}

// TestPoolRefillsAfterBurst: after a burst of concurrent runs in one
// conversation the pool starts spares again up to what the burst needed
// (PerConversation), and the next run takes one.
func TestPoolRefillsAfterBurst(t *testing.T) {
	t.Parallel()
	e, perms := newPoolEnv(t, nil)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := e.run(t, `await new Promise(r => setTimeout(r, 50)); 1`, withPerms(perms)); res.Error != nil {
				t.Errorf("burst run: %s", describe(res))
			}
		}()
	}
	wg.Wait()
	eventually(t, "two ready spares after the burst", func() bool { return len(readyPids(e.r)) == 2 })
	before := e.r.PoolStats()
	res := e.run(t, `2`, withPerms(perms))
	if res.Error != nil || string(res.Value) != "2" {
		t.Fatalf("run after burst: %s", describe(res))
	}
	if after := e.r.PoolStats(); after.Hits != before.Hits+1 {
		t.Errorf("the run after the burst did not take a spare: %+v -> %+v", before, after)
	}
}

// TestPoolReplacesCrashedIdle kills an idle spare from outside; the pool
// notices, starts another, and runs still get a pooled process.
func TestPoolReplacesCrashedIdle(t *testing.T) {
	t.Parallel()
	e, perms := newPoolEnv(t, nil)
	eventually(t, "a ready spare", func() bool { return len(readyPids(e.r)) == 1 })
	victim := readyPids(e.r)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a replacement spare", func() bool {
		p := readyPids(e.r)
		return len(p) == 1 && p[0] != victim
	})
	if st := e.r.PoolStats(); st.Crashed != 1 {
		t.Errorf("crashed = %d, want 1", st.Crashed)
	}
	var used int
	e.r.onStart = func(pid int) { used = pid }
	before := e.r.PoolStats()
	if res := e.run(t, `1`, withPerms(perms)); res.Error != nil {
		t.Fatalf("run: %s", describe(res))
	}
	if used == victim || e.r.PoolStats().Hits != before.Hits+1 {
		t.Errorf("the run did not use the replacement (pid %d, victim %d)", used, victim)
	}
}

// TestPoolProfileChange: a spare started with one profile never runs a
// program of another (grants, memory); the old spares are retired.
func TestPoolProfileChange(t *testing.T) {
	t.Parallel()
	e, perms := newPoolEnv(t, nil)
	secret := filepath.Join(e.dir, "workspace", "secret.txt")
	if err := os.WriteFile(secret, []byte("s3"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a ready spare with the read grant", func() bool { return len(readyPids(e.r)) == 1 })
	old := readyPids(e.r)[0]
	var used int
	e.r.onStart = func(pid int) { used = pid }
	// The grant was revoked: the program must not read the file.
	res := e.run(t, `Deno.readTextFileSync("workspace/secret.txt")`, withPerms(config.Permissions{}))
	if res.Error == nil || res.Error.Kind != KindPermission {
		t.Errorf("read with the grant revoked: %s", describe(res))
	}
	if used == old {
		t.Error("the run took the spare of the old profile")
	}
	waitGone(t, old)
	if slices.Contains(e.r.poolPids(), old) {
		t.Error("the old profile's spare is still pooled")
	}
	// A memory change is another profile too.
	eventually(t, "a spare of the new profile", func() bool { return len(readyPids(e.r)) >= 1 })
	olds := readyPids(e.r)
	res = e.run(t, `1`, withPerms(config.Permissions{}), func(s *Spec) { s.MemoryMB = 64 })
	if res.Error != nil || slices.Contains(olds, used) {
		t.Errorf("memory change: used %d (old %v): %s", used, olds, describe(res))
	}
	// And back to the grant: a new spare, never the revoked one.
	res = e.run(t, `Deno.readTextFileSync("workspace/secret.txt")`, withPerms(perms))
	if res.Error != nil || string(res.Value) != `"s3"` {
		t.Errorf("read with the grant: %s", describe(res))
	}
}

// TestPoolIdleTimeout: spares of an unused conversation end after
// IdleTimeout (Min 0).
func TestPoolIdleTimeout(t *testing.T) {
	t.Parallel()
	e, _ := newPoolEnv(t, func(o *PoolOptions) { o.Min = 0; o.IdleTimeout = 100 * time.Millisecond })
	eventually(t, "the spare ended", func() bool { return len(e.r.poolPids()) == 0 && e.r.PoolStats().Started == 1 })
	waitNoCmdline(t, e.r.harness)
}

// TestPoolCeiling: spares never exceed Max; the most recently used
// conversations keep theirs.
func TestPoolCeiling(t *testing.T) {
	t.Parallel()
	e, _ := newPoolEnv(t, func(o *PoolOptions) { o.Max = 2 })
	for i := range 5 {
		if err := e.r.PrepareDir(filepath.Join(e.ws, "d"+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
		if n := len(e.r.poolPids()); n > 2 {
			t.Errorf("%d pooled processes, more than Max 2", n)
		}
	}
	eventually(t, "two ready spares", func() bool { return len(readyPids(e.r)) == 2 })
	p := e.r.pool
	p.mu.Lock()
	var dirs []string
	for _, s := range p.slots {
		if len(s.procs) > 0 {
			dirs = append(dirs, filepath.Base(s.dir))
		}
	}
	p.mu.Unlock()
	slices.Sort(dirs)
	if strings.Join(dirs, ",") != "d3,d4" {
		t.Errorf("spares for %v, want the two most recent conversations d3,d4", dirs)
	}
}

// TestPoolCloseLeavesNothing: Close kills every pooled process (booting
// ones included), waits for them, and leaves no goroutine behind. Not
// parallel: goleak looks at the whole test binary.
func TestPoolCloseLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e, perms := newPoolEnv(t, nil)
	defer e.r.Close() // before goleak looks, even on failure
	for i := range 3 {
		if err := e.r.PrepareDir(filepath.Join(e.ws, "x"+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if res := e.run(t, `1`, withPerms(perms)); res.Error != nil {
		t.Fatalf("run: %s", describe(res))
	}
	eventually(t, "processes pooled before Close", func() bool { return len(e.r.poolPids()) > 0 })
	e.r.Close()
	var left []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), e.r.harness) {
			left = append(left, d.Name())
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left after Close: %v", left)
	}
	// Runs after Close still work, without the pool.
	res := e.run(t, `2`, withPerms(perms))
	if res.Error != nil || string(res.Value) != "2" {
		t.Errorf("run after Close: %s", describe(res))
	}
	if len(e.r.poolPids()) != 0 {
		t.Error("a run after Close pooled a process")
	}
	e.r.Close() // waits for that run's process to be reaped
}

// TestPoolRecreatedDir: a spare whose conversation directory was removed
// and made again (same path, new directory) is not used.
func TestPoolRecreatedDir(t *testing.T) {
	t.Parallel()
	e, perms := newPoolEnv(t, nil)
	eventually(t, "a ready spare", func() bool { return len(readyPids(e.r)) == 1 })
	stale := readyPids(e.r)[0]
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	if err := e.r.prepareDir(e.dir); err != nil { // no new spare
		t.Fatal(err)
	}
	var used int
	e.r.onStart = func(pid int) { used = pid }
	res := e.run(t, `Deno.writeTextFileSync("workspace/f", "x"); Deno.readTextFileSync("workspace/f")`, withPerms(perms))
	if res.Error != nil || string(res.Value) != `"x"` || used == stale {
		t.Errorf("run in the recreated directory (used %d, stale %d): %s", used, stale, describe(res))
	}
}

// TestPoolPreloadsModules: a spare loads the modules Options.Modules lists
// for its directory before it says ready, once; a run importing one gets
// that instance. Modules outside the directory's mcp/ are never loaded.
func TestPoolPreloadsModules(t *testing.T) {
	t.Parallel()
	var mod string
	e := newTestEnvWith(t, testPoolOptions, func(ws string, o *Options) {
		dir := filepath.Join(ws, "c1")
		mod = filepath.Join(dir, "mcp", ".v", "m-1.ts")
		other := filepath.Join(ws, "c2", "mcp", ".v", "x-1.ts")
		for path, src := range map[string]string{
			mod:   "(globalThis as any).__loads = ((globalThis as any).__loads ?? 0) + 1;\nexport const v: number = 7;\n",
			other: "(globalThis as any).__outside = true;\nexport const v = 0;\n",
		} {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(src), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		o.Modules = func(d string) []string {
			if d != dir {
				return nil
			}
			return []string{mod, other, "relative/m.ts"}
		}
	})
	perms := config.Permissions{Read: []string{e.ws}, Write: []string{e.ws}}
	withPerms := func(s *Spec) {
		s.Permissions = perms
		s.Importer = Importer{Module: func(string) (string, error) { return mod, nil }}
	}
	eventually(t, "a ready spare", func() bool { return len(readyPids(e.r)) > 0 })
	res := e.run(t, "[(globalThis as any).__loads ?? 0, (globalThis as any).__outside ?? false]", withPerms)
	if res.Error != nil || string(res.Value) != "[1,false]" {
		t.Fatalf("spare globals = %s (%+v), want [1,false]: the module loaded once, nothing outside mcp/", res.Value, res.Error)
	}
	eventually(t, "a ready spare", func() bool { return len(readyPids(e.r)) > 0 })
	res = e.run(t, `import * as m from "./mcp/m"; [m.v, (globalThis as any).__loads]`, withPerms)
	if res.Error != nil || string(res.Value) != "[7,1]" {
		t.Fatalf("import of a preloaded module = %s (%+v), want [7,1]", res.Value, res.Error)
	}
}

// TestEagerCompileFlag: pooled processes get --no-lazy inside the one
// --v8-flags argument (Deno takes the last --v8-flags only), and the
// profile's own arguments are left as they were.
func TestEagerCompileFlag(t *testing.T) {
	args := []string{"run", "--v8-flags=--max-old-space-size=128", "--no-npm", "harness.js"}
	got := eagerCompile(args)
	want := []string{"run", "--v8-flags=--max-old-space-size=128,--no-lazy", "--no-npm", "harness.js"}
	if !slices.Equal(got, want) {
		t.Fatalf("eagerCompile = %q, want %q", got, want)
	}
	if args[1] != "--v8-flags=--max-old-space-size=128" {
		t.Fatalf("eagerCompile changed its input: %q", args)
	}
}

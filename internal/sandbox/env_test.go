package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
)

// sbx is a Runner of its own with a conversation "c1", a sibling
// conversation "c2" and a secret file outside the workspace. It records the
// pid of every Deno process it starts so that each run can be checked to
// leave no process behind.
type sbx struct {
	t        testing.TB
	r        *Runner
	base     string // outside the workspace
	ws       string
	dir      string // conversation c1
	other    string // conversation c2
	secret   string // content of the secret files
	secretF  string // a file outside the workspace
	otherF   string // a file in c2's workspace
	mu       sync.Mutex
	pids     []int
	lastPids []int
}

func newSbx(t testing.TB) *sbx {
	t.Helper()
	e := newTestEnv(t)
	s := &sbx{t: t, r: e.r, ws: e.ws, dir: e.dir, base: filepath.Dir(e.ws)}
	s.r.onStart = func(pid int) {
		s.mu.Lock()
		s.pids = append(s.pids, pid)
		s.mu.Unlock()
	}
	s.secret = "TOPSECRET-" + randomHex(8)
	s.secretF = filepath.Join(s.base, "secret.txt")
	if err := os.WriteFile(s.secretF, []byte(s.secret), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.base, "secret.json"), []byte(`{"s":"`+s.secret+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.other = filepath.Join(s.ws, "c2")
	if err := s.r.PrepareDir(s.other); err != nil {
		t.Fatal(err)
	}
	s.otherF = filepath.Join(s.other, "workspace", "secret.txt")
	if err := os.WriteFile(s.otherF, []byte(s.secret), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// wsGrant is what an administrator typically grants: the workspace root,
// which the sandbox narrows to the running conversation.
func (s *sbx) wsGrant() config.Permissions {
	return config.Permissions{Read: []string{s.ws}, Write: []string{s.ws}}
}

// run runs code with a read/write grant on the workspace root and checks
// that no process of the run remains.
func (s *sbx) run(code string, mod ...func(*Spec)) *Result {
	s.t.Helper()
	spec := Spec{Code: code, Dir: s.dir, Timeout: 5 * time.Second, MemoryMB: 128, MaxOutputBytes: 1 << 20,
		Permissions: s.wsGrant()}
	for _, m := range mod {
		m(&spec)
	}
	s.mu.Lock()
	before := len(s.pids)
	s.mu.Unlock()
	res, err := s.r.Run(context.Background(), spec)
	if err != nil {
		s.t.Fatalf("Run: %v", err)
	}
	s.mu.Lock()
	s.lastPids = append([]int(nil), s.pids[before:]...)
	s.mu.Unlock()
	for _, pid := range s.lastPids {
		waitGone(s.t, pid)
	}
	// Only the pool's spares, waiting for a program, may remain.
	waitNoCmdline(s.t, s.r.harness, s.r.poolPids)
	return res
}

func withTimeout(d time.Duration) func(*Spec) { return func(s *Spec) { s.Timeout = d } }

// waitGone fails the test unless every process of the group led by pid
// (which the run started with Setpgid) is gone within a deadline.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := groupMembers(pid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of run %d still alive: %v", pid, left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNoCmdline fails the test unless no process has a command line holding
// text within a deadline, except those that allowed lists (at the time).
func waitNoCmdline(t testing.TB, text string, allowed ...func() []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		ents, _ := os.ReadDir("/proc")
		var ok []int
		for _, f := range allowed {
			ok = append(ok, f()...)
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || slices.Contains(ok, pid) {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && strings.Contains(string(b), text) {
				left = append(left, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still alive: %v", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupMembers lists live (non-zombie reaped or not) processes whose process
// group is pgid.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, g, ok := procStat(pid); ok && (g == pgid || pid == pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// hostPaths are the paths no output may show: the Deno install, the caches,
// the harness and everything outside the workspace.
func (s *sbx) hostPaths() []string {
	o := s.r.opts
	ps := []string{o.Deno, filepath.Dir(o.Deno), o.DenoDir, o.Home, s.r.harness, "/work/main"}
	if real, err := filepath.EvalSymlinks(o.Deno); err == nil {
		ps = append(ps, real, filepath.Dir(real))
	}
	return ps
}

// noLeak fails when any part of res shows the secret or a host path.
func (s *sbx) noLeak(res *Result, extra ...string) {
	s.t.Helper()
	parts := map[string]string{"value": string(res.Value), "stdout": res.Stdout, "stderr": res.Stderr}
	if res.Error != nil {
		parts["message"] = res.Error.Message
		parts["stack"] = res.Error.Stack
	}
	bad := append([]string{s.secret}, s.hostPaths()...)
	bad = append(bad, extra...)
	for name, text := range parts {
		for _, b := range bad {
			if b != "" && strings.Contains(text, b) {
				s.t.Errorf("%s leaks %q:\n%s", name, b, text)
			}
		}
	}
}

func (s *sbx) writeWS(name, content string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, "workspace", name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func describe(res *Result) string {
	var b strings.Builder
	b.WriteString("value=" + string(res.Value))
	if res.Error != nil {
		b.WriteString(" error=" + string(res.Error.Kind) + ": " + res.Error.Message)
		if res.Error.Stack != "" {
			b.WriteString("\nstack: " + res.Error.Stack)
		}
	}
	if res.Stdout != "" {
		b.WriteString("\nstdout=" + strconv.Quote(res.Stdout))
	}
	if res.Stderr != "" {
		b.WriteString("\nstderr=" + strconv.Quote(res.Stderr))
	}
	return b.String()
}
